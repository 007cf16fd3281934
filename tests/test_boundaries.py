"""Package boundaries that match the flow: ``shared/`` is the ground floor (it imports no process), no process
imports another process's package, ``kta/`` (the command and the supervisor) alone sits on top of them all,
and no module imports itself round a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROCESSES = ("gateway", "ticker_worker", "strategy_worker", "execution_worker", "kite_sim")
PACKAGES = ("shared", *PROCESSES, "kta")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, int, bool]]:
    """(imported module, line, at module level) for every import in the file, relative ones resolved."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    top_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno, id(node) in top_level) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.append((full if full in modules else base, node.lineno, id(node) in top_level))
    return found


ALLOWED = {"shared": set(), "kta": set(PACKAGES)} | {process: {"shared"} for process in PROCESSES}


def _crossings(modules: dict[str, Path]) -> list[str]:
    bad = []
    for name, path in sorted(modules.items()):
        home = name.split(".")[0]
        for target, line, _ in _imports(name, path, modules):
            other = target.split(".")[0]
            if other in PACKAGES and other != home and other not in ALLOWED[home]:
                where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
                bad.append(f"{where}:{line} imports {target}")
    return bad


def _cycles(modules: dict[str, Path]) -> list[str]:
    graph = {name: sorted({t for t, _, top in _imports(name, path, modules) if top and t in modules and t != name})
             for name, path in modules.items()}
    cycles, state = [], {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for nxt in graph[node]:
            if state.get(nxt) == "open":
                cycles.append(" -> ".join([*trail[trail.index(nxt):], node, nxt] if nxt in trail else [node, nxt]))
            elif nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [])
    return cycles


def test_shared_imports_no_process_and_no_process_imports_another():
    assert _crossings(MODULES) == []


def test_the_product_imports_nothing_only_the_dev_extra_installs():
    dev_only = {"pandas", "pytest", "hypothesis", "playwright", "talib", "kiteconnect", "py_vollib", "aiosmtpd", "yaml"}
    found = [f"{path.relative_to(ROOT)}:{line} imports {target}" for name, path in sorted(MODULES.items())
             for target, line, _ in _imports(name, path, MODULES) if target.split(".")[0] in dev_only]
    assert found == []


def test_no_import_cycle_at_module_level():
    assert _cycles(MODULES) == []


def test_the_checks_see_a_crossing_and_a_cycle(tmp_path):
    (tmp_path / "a.py").write_text("from shared import b\n\ndef f():\n    from execution_worker import engine\n")
    (tmp_path / "b.py").write_text("import os\nfrom shared.c import x\n")
    (tmp_path / "c.py").write_text("from shared.a import f\n")
    fake = {f"shared.{n}": tmp_path / f"{n}.py" for n in "abc"}
    assert _crossings(fake) == ["a.py:4 imports execution_worker"]
    assert _cycles(fake) == ["shared.a -> shared.b -> shared.c -> shared.a"]
