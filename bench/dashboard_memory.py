"""The dashboard's memory over a long live session: `kta up` (kite_sim at --speed) in a temporary data
directory on free ports, a trader's page in headless Chromium (log in with the dev OTP, connect Kite, five
strategies incl. an option one on three symbols, Start), then every --every seconds a forced GC over CDP and a
sample of the JS heap, DOM nodes, event listeners and the page's own buffers (table rows, chart points).
At each exchange day's start (the first tick of a new day) both heaps are sampled again after a GC (and
snapshotted with --snapshots DIR: diff two with `python -m bench.heap_snapshot`): the verdict compares the JS
heap at successive day starts against BOUND_KB_PER_DAY. With --baseline REV a second page, logged in beside the
first on the same stack, runs the page scripts of web/static as they were at git revision REV: same ticks, same
moments; the ratio new/old is printed for each day start.
usage: python -m bench.dashboard_memory [--minutes 36] [--speed 60] [--every 30] [--baseline main] [--snapshots DIR]"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.async_api import async_playwright, expect

from bench import heap_snapshot
from shared.natsd import free_port

# A page open all week must level off: its heap after GC at one day's start may exceed the previous day's start
# by at most this (a page's buffers are bounded by the day or by a cap the trader sees).
BOUND_KB_PER_DAY = 50.0
IST = 19800
ROOT = Path(__file__).resolve().parent.parent
NEWEST_TICK_JS = """() => Math.max(0, ...Array.from(document.querySelectorAll('#ticks-body tr[data-ts]'),
  r => parseInt(r.dataset.ts, 10) || 0))"""
STRATEGIES = ["ema_crossover", "rsi", "vwap_breakout", "mean_reversion", "straddle"]
SYMBOLS = ["NIFTY 50", "INFY", "RELIANCE"]
BUFFERS_JS = """() => ({
  ticks: document.querySelectorAll('#ticks-body tr').length,
  signals: document.querySelectorAll('#signals-body tr').length,
  orders: document.querySelectorAll('#orders-body tr').length,
  events: document.querySelectorAll('#events li').length,
  chart: window.ktaChartSizes ? window.ktaChartSizes() : null,
})"""


def log(*a) -> None:
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def start_stack(tmp: Path, speed: float, tree: Path) -> tuple[subprocess.Popen, str]:
    """`kta up` of the code in `tree` (its packages first on the path) with its data in `tmp`."""
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    args = [sys.executable, "-m", "kta", "--data-dir", str(tmp / "var"), "up", "--port", str(port),
            "--sim-port", str(free_port()), "--nats-port", str(free_port()), "--sim-speed", str(speed),
            "--sim-seed", "7"]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    proc = subprocess.Popen(args, stdout=open(tmp / "up.log", "w"), stderr=subprocess.STDOUT, cwd=tree, env=env,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            if httpx.get(url + "/login", timeout=2).status_code < 500:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"kta up exited: {(tmp / 'up.log').read_text()[-2000:]}")
        time.sleep(0.5)
    raise SystemExit("gateway did not answer in 120 s")


async def log_in(page, url: str) -> None:
    await page.goto(url + "/")
    await page.fill("input[name=zerodha_id]", "DEMO01")
    await page.fill("input[name=email]", "demo@kta.local")
    await page.click("button[type=submit]")
    await page.fill("input[name=otp]", await page.locator("#dev-otp").inner_text())
    await page.click("button[type=submit]")
    await expect(page.locator("#broker-pill")).to_have_text(re.compile("Kite (not )?connected"), timeout=30_000)


async def set_up(page) -> None:
    if " ".join((await page.locator("#broker-pill").inner_text()).split()) != "Kite connected":
        await page.click("text=Connect Kite")
        await page.fill("#userid", "DEMO01")
        await page.fill("#password", "demo")
        await page.locator("#password").press("Enter")
        await expect(page.locator("#broker-pill")).to_have_text("Kite connected", timeout=30_000)
    for name in STRATEGIES:
        select = page.locator("#strategy-select")
        if await select.input_value() != name:
            async with page.expect_response("**/ui/strategies/form?*"):
                await select.select_option(name)
        n = await page.locator("#strategy-list tbody:not(.head) tr").count()
        await page.click("#add-strategy")
        await expect(page.locator("#strategy-list tbody:not(.head) tr")).to_have_count(n + 1, timeout=15_000)
    for sym in SYMBOLS:
        await page.fill("#symbol-search", "")
        await page.locator("#symbol-search").press_sequentially(sym, delay=20)
        hit = page.locator("#symbol-results li", has_text=sym).first
        await expect(hit).to_be_visible(timeout=15_000)
        async with page.expect_response("**/ui/symbols/pick?*"):
            await hit.locator("button.pick").click()


async def sample(cdp, page) -> dict:
    await cdp.send("HeapProfiler.collectGarbage")
    heap = await cdp.send("Runtime.getHeapUsage")
    metrics = {m["name"]: m["value"] for m in (await cdp.send("Performance.getMetrics"))["metrics"]}
    return {"heap_kb": heap["usedSize"] / 1024, "blink_kb": heap.get("embedderHeapUsedSize", 0) / 1024, "nodes": int(metrics["Nodes"]),
            "listeners": int(metrics["JSEventListeners"]), "docs": int(metrics["Documents"]),
            "script_s": metrics.get("ScriptDuration", 0.0), "task_s": metrics.get("TaskDuration", 0.0),
            "buffers": await page.evaluate(BUFFERS_JS)}


def show(label: str, elapsed: float, s: dict) -> None:
    log(f"{label:4} {elapsed / 60:6.1f} min  heap {s['heap_kb']:8.0f} KB  blink {s['blink_kb']:6.0f} KB  nodes {s['nodes']:6d}  "
        f"listeners {s['listeners']:4d}  docs {s['docs']}  {s['buffers']}")


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, 15)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)


async def run(minutes: float, speed: float, every: float, shots: Path | None, snaps: Path | None,
              baseline: str) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="kta-dashmem-"))
    trees = {"new": ROOT}
    if baseline:  # the old code whole (gateway, templates, CSS, scripts) in a worktree of its own, its own stack
        trees["old"] = tmp / "old-tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(trees["old"]), baseline],
                       check=True, capture_output=True)
    stacks: dict[str, tuple[subprocess.Popen, str]] = {}
    rows: list[tuple[float, str, dict]] = []
    starts: dict[str, list[tuple[int, float, dict]]] = {lab: [] for lab in trees}  # (exchange day, wall s, sample)
    try:
        for label, tree in trees.items():
            stacks[label] = start_stack(tmp / label, speed, tree)
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                              args=["--no-sandbox"])
            pages, cdps, day = {}, {}, {}
            for label, (_, url) in stacks.items():
                page = await (await browser.new_context(viewport={"width": 1440, "height": 1000})).new_page()
                page.on("dialog", lambda d: d.accept())
                page.on("pageerror", lambda e, label=label: log(label, "PAGE ERROR", e))
                await log_in(page, url)
                await set_up(page)
                pages[label] = page
            for label, page in pages.items():
                await page.click("#start")
                await expect(page.locator("#live-pill")).to_contain_text("live on", timeout=90_000)
            for label, page in pages.items():  # like for like: a fresh load of the live desk, no setup behind it
                await page.goto(stacks[label][1] + "/")
                await expect(page.locator("#live-pill")).to_contain_text("live on", timeout=30_000)
                cdps[label] = await page.context.new_cdp_session(page)
                await cdps[label].send("Performance.enable")
                day[label] = None
            log(f"started {', '.join(f'{lab} at {u}' for lab, (_, u) in stacks.items())}; sampling every "
                f"{every:.0f} s for {minutes} min at {speed}x" + (f" (old = {baseline})" if baseline else ""))
            t0 = time.monotonic()
            cpu0 = os.times()
            next_sample = 0.0
            while True:
                elapsed = time.monotonic() - t0
                for label, page in pages.items():
                    ts = await page.evaluate(NEWEST_TICK_JS)
                    today = (ts + IST) // 86400 if ts else None
                    if today is not None and day[label] is not None and today != day[label]:
                        got = await sample(cdps[label], page)
                        show(label, elapsed, got)
                        starts[label].append((today, elapsed, got))
                        if snaps:
                            await heap_snapshot.take(cdps[label], snaps / f"{label}-day{len(starts[label])}.heapsnapshot")
                        log(f"{label}: day {len(starts[label])} starts (exchange day {today})")
                    day[label] = today if today is not None else day[label]
                if elapsed >= next_sample:
                    for label, page in pages.items():
                        s = await sample(cdps[label], page)
                        rows.append((elapsed, label, s))
                        show(label, elapsed, s)
                    if shots and len(rows) % max(1, int(300 / every)) == 1:
                        await pages["new"].screenshot(path=str(shots / f"t{int(elapsed):05d}.png"), full_page=True)
                    next_sample += every
                if elapsed >= minutes * 60:
                    break
                await asyncio.sleep(2)  # a polling period of wall time for the day's change: memory is measured
            await browser.close()
    finally:
        for proc, _ in stacks.values():
            stop(proc)
        if baseline:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(trees["old"])],
                           capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    return verdict(rows, starts, list(trees), cpu0)


def verdict(rows, starts: dict[str, list], labels: list[str], cpu0) -> int:
    print(f"\nload {os.getloadavg()}  bench CPU {os.times().user - cpu0.user:.1f} s user")
    for label in labels:
        mine = [s for _, lab, s in rows if lab == label]
        heaps = [s["heap_kb"] for s in mine]
        print(f"{label}: heap after GC start {heaps[0]:.0f} KB, min {min(heaps):.0f}, max {max(heaps):.0f}, "
              f"end {heaps[-1]:.0f}; Blink {mine[0]['blink_kb']:.0f} -> {mine[-1]['blink_kb']:.0f} KB; nodes "
              f"{mine[0]['nodes']} -> {mine[-1]['nodes']} (max {max(s['nodes'] for s in mine)}), listeners "
              f"{mine[0]['listeners']} -> {mine[-1]['listeners']}; renderer script "
              f"{mine[-1]['script_s'] - mine[0]['script_s']:.1f} s, tasks {mine[-1]['task_s'] - mine[0]['task_s']:.1f} s")
    days = min(len(starts[lab]) for lab in labels)
    print("\nafter GC at each day's start (the first tick of a new exchange day), KB:")
    print("day  " + "  ".join(f"{lab + ' min':>8} {lab + ' JS':>8} {'Blink':>6} {'nodes':>6} {'lsnr':>5} {'signals':>7}"
                             for lab in labels) + ("   JS new/old  Blink new/old" if len(labels) > 1 else ""))
    for n in range(days):
        got = {lab: starts[lab][n] for lab in labels}
        cells = "  ".join(f"{got[lab][1] / 60:8.1f} {got[lab][2]['heap_kb']:8.0f} {got[lab][2]['blink_kb']:6.0f} "
                          f"{got[lab][2]['nodes']:6d} {got[lab][2]['listeners']:5d} {got[lab][2]['buffers']['signals']:7d}"
                          for lab in labels)
        ratio = (f"   {got['new'][2]['heap_kb'] / got['old'][2]['heap_kb']:10.2f}  "
                 f"{got['new'][2]['blink_kb'] / got['old'][2]['blink_kb']:13.2f}") if len(labels) > 1 else ""
        print(f"{n + 1:3d}  {cells}{ratio}")
    if days < 3:
        print(f"{days} day starts: too few for a verdict (run longer)")
        return 2
    growth, blink = {}, {}
    for lab in labels:
        # from the second day start on: the first follows a partial day (the page opened mid-session)
        later = [s for _, _, s in starts[lab][1:days]]
        growth[lab] = (later[-1]["heap_kb"] - later[0]["heap_kb"]) / (len(later) - 1)
        blink[lab] = (later[-1]["blink_kb"] - later[0]["blink_kb"]) / (len(later) - 1)
    ok = growth["new"] <= BOUND_KB_PER_DAY
    print("Blink's heap (DOM, layout, style; DevTools' network records too while CDP is attached) from one day's "
          "start to the next (days 2..): " + ", ".join(f"{lab} {g:+.0f} KB a day" for lab, g in blink.items()))
    print("JS heap from one day's start to the next (days 2..): " + ", ".join(
        f"{lab} {g:+.0f} KB a day" for lab, g in growth.items())
        + f"; bound {BOUND_KB_PER_DAY:.0f} KB a day -> {'BOUNDED' if ok else 'GROWING'}")
    return 0 if ok else 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=20)
    ap.add_argument("--speed", type=float, default=60)
    ap.add_argument("--every", type=float, default=30, help="seconds between samples")
    ap.add_argument("--shots", default="", help="directory for a screenshot every 5 minutes")
    ap.add_argument("--snapshots", default="", help="directory for heap snapshots at each day's start")
    ap.add_argument("--baseline", default="", help="git revision: its code in a second stack and page beside the first")
    a = ap.parse_args()
    shots = Path(a.shots) if a.shots else None
    snaps = Path(a.snapshots) if a.snapshots else None
    for d in (shots, snaps):
        if d:
            d.mkdir(parents=True, exist_ok=True)
    raise SystemExit(asyncio.run(run(a.minutes, a.speed, a.every, shots, snaps, a.baseline)))


if __name__ == "__main__":
    main()
