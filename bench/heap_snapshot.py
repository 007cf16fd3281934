"""A page's JS heap snapshot over CDP, and the difference of two by constructor.
`take(cdp, path)` writes a `.heapsnapshot` (the format DevTools opens) from `HeapProfiler.takeHeapSnapshot`'s
streamed chunks; `python -m bench.heap_snapshot A.heapsnapshot B.heapsnapshot [--top 30]` prints, for each
constructor (or kind: strings, closures by name, arrays, DOM nodes, "Detached …" ones), the objects and their
self size in A and B and the change, largest growth first.
usage: python -m bench.heap_snapshot OLD.heapsnapshot NEW.heapsnapshot [--top 30]"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from pathlib import Path

STRING_KINDS = {"string", "concatenated string", "sliced string"}


async def take(cdp, path: Path) -> None:
    chunks: list[str] = []

    def on_chunk(ev: dict) -> None:
        chunks.append(ev["chunk"])

    await cdp.send("HeapProfiler.enable")
    cdp.on("HeapProfiler.addHeapSnapshotChunk", on_chunk)
    try:
        await cdp.send("HeapProfiler.takeHeapSnapshot", {"reportProgress": False})
    finally:
        cdp.remove_listener("HeapProfiler.addHeapSnapshotChunk", on_chunk)
    path.write_text("".join(chunks))


def group(kind: str, name: str) -> str:
    if kind == "native":  # Blink's C++ objects (DOM, layout, style): outside the JS heap Runtime.getHeapUsage counts
        return f"[native] {name}"
    if kind == "object":
        return name
    if kind in STRING_KINDS:
        return "(string)"
    if kind == "closure":
        return f"(closure) {name or '(anonymous)'}"
    if kind == "array":
        return f"(array) {name}"
    if kind == "hidden":
        return f"(system) {name}"
    return f"({kind})"


def summary(path: Path) -> dict[str, list[int]]:
    """{constructor or kind: [objects, self size in bytes]}; a detached DOM node counts under "Detached <its
    name>" (Chromium marks it in the node's detachedness field, or in its name)."""
    snap = json.loads(Path(path).read_text())
    meta = snap["snapshot"]["meta"]
    fields = meta["node_fields"]
    kinds = meta["node_types"][0]
    width = len(fields)
    i_type, i_name, i_size = fields.index("type"), fields.index("name"), fields.index("self_size")
    i_det = fields.index("detachedness") if "detachedness" in fields else None
    nodes, strings = snap["nodes"], snap["strings"]
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for at in range(0, len(nodes), width):
        kind = kinds[nodes[at + i_type]]
        if kind == "synthetic":
            continue
        name = group(kind, re.sub(r" @\d+", "", strings[nodes[at + i_name]]))  # one scope, not one per id
        if i_det is not None and nodes[at + i_det] == 2 and "Detached " not in name:
            name = "Detached " + name
        row = out[name]
        row[0] += 1
        row[1] += nodes[at + i_size]
    return dict(out)


def totals(s: dict[str, list[int]]) -> str:
    js = [v for k, v in s.items() if not k.startswith(("[native]", "Detached [native]"))]
    native = [v for k, v in s.items() if k.startswith(("[native]", "Detached [native]"))]
    return (f"JS {sum(v[1] for v in js) / 1024:,.0f} KB in {sum(v[0] for v in js):,} objects, "
            f"native {sum(v[1] for v in native) / 1024:,.0f} KB in {sum(v[0] for v in native):,}")


def diff(a: dict[str, list[int]], b: dict[str, list[int]], top: int, js_only: bool = False) -> list[str]:
    if js_only:
        a = {k: v for k, v in a.items() if "[native]" not in k}
        b = {k: v for k, v in b.items() if "[native]" not in k}
    keys = set(a) | set(b)
    rows = []
    for k in keys:
        (na, sa), (nb, sb) = a.get(k, [0, 0]), b.get(k, [0, 0])
        rows.append((sb - sa, nb - na, k, na, nb, sa, sb))
    rows.sort(key=lambda r: (-abs(r[0]), -abs(r[1])))
    total_a, total_b = sum(v[1] for v in a.values()), sum(v[1] for v in b.values())
    lines = [f"A: {totals(a)}", f"B: {totals(b)}", f"self size total {total_a / 1024:,.0f} KB -> {total_b / 1024:,.0f} KB "
             f"({(total_b - total_a) / 1024:+,.1f} KB); objects {sum(v[0] for v in a.values()):,} -> "
             f"{sum(v[0] for v in b.values()):,}",
             f"{'constructor / kind':48} {'objects':>17} {'change':>7} {'self KB':>17} {'change':>8}"]
    for ds, dn, k, na, nb, sa, sb in rows[:top]:
        lines.append(f"{k[:48]:48} {na:>8,}{nb:>9,} {dn:>+7,} {sa / 1024:>8,.1f}{sb / 1024:>9,.1f} {ds / 1024:>+8,.1f}")
    for label, s in (("A", a), ("B", b)):
        detached = {k: v for k, v in s.items() if k.startswith("Detached ")}
        lines.append(f"detached DOM in {label}: {sum(v[0] for v in detached.values())} objects "
                     f"({', '.join(f'{k[9:]} {v[0]}' for k, v in sorted(detached.items(), key=lambda kv: -kv[1][0])[:6])})")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--js", action="store_true", help="the JS heap only (no Blink C++ objects)")
    a = ap.parse_args()
    print("\n".join(diff(summary(Path(a.old)), summary(Path(a.new)), a.top, a.js)))


if __name__ == "__main__":
    main()
