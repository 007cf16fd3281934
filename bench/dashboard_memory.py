"""The dashboard's memory over a long live session: `kta up` (kite_sim at --speed) in a temporary data
directory on free ports, a trader's page in headless Chromium (log in with the dev OTP, connect Kite, five
strategies incl. an option one on three symbols, Start), then every --every seconds a forced GC over CDP and a
sample of the JS heap, DOM nodes, event listeners and the page's own buffers (table rows, chart points).
Prints the table, the growth per market hour over the last half and a verdict against BOUND_KB_PER_HOUR.
usage: python -m bench.dashboard_memory [--minutes 20] [--speed 60] [--every 30]"""

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

from shared.natsd import free_port

# A page open all day must level off: after the first half of the run, the heap after GC may grow at most this
# much per market hour (a day's 6.25 hours of chart points at this rate is under 1 MB).
BOUND_KB_PER_HOUR = 150.0
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


def start_stack(tmp: Path, speed: float) -> tuple[subprocess.Popen, str]:
    port = free_port()
    args = [sys.executable, "-m", "kta", "--data-dir", str(tmp / "var"), "up", "--port", str(port),
            "--sim-port", str(free_port()), "--nats-port", str(free_port()), "--sim-speed", str(speed),
            "--sim-seed", "7"]
    proc = subprocess.Popen(args, stdout=open(tmp / "up.log", "w"), stderr=subprocess.STDOUT,
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


async def open_session(page, url: str) -> None:
    await page.goto(url + "/")
    await page.fill("input[name=zerodha_id]", "DEMO01")
    await page.fill("input[name=email]", "demo@kta.local")
    await page.click("button[type=submit]")
    await page.fill("input[name=otp]", await page.locator("#dev-otp").inner_text())
    await page.click("button[type=submit]")
    await expect(page.locator("#broker-pill")).to_have_text(re.compile("Kite (not )?connected"), timeout=30_000)
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
        n = await page.locator("#strategy-list tbody tr").count()
        await page.click("#add-strategy")
        await expect(page.locator("#strategy-list tbody tr")).to_have_count(n + 1, timeout=15_000)
    for sym in SYMBOLS:
        await page.fill("#symbol-search", "")
        await page.locator("#symbol-search").press_sequentially(sym, delay=20)
        hit = page.locator("#symbol-results li", has_text=sym).first
        await expect(hit).to_be_visible(timeout=15_000)
        async with page.expect_response("**/ui/symbols/pick?*"):
            await hit.locator("button.pick").click()
    await page.click("#start")
    await expect(page.locator("#live-pill")).to_contain_text("live on", timeout=90_000)


async def sample(cdp, page) -> dict:
    await cdp.send("HeapProfiler.collectGarbage")
    heap = await cdp.send("Runtime.getHeapUsage")
    metrics = {m["name"]: m["value"] for m in (await cdp.send("Performance.getMetrics"))["metrics"]}
    return {"heap_kb": heap["usedSize"] / 1024, "nodes": int(metrics["Nodes"]),
            "listeners": int(metrics["JSEventListeners"]), "docs": int(metrics["Documents"]),
            "buffers": await page.evaluate(BUFFERS_JS)}


async def run(minutes: float, speed: float, every: float, shots: Path, snapshots: bool) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="kta-dashmem-"))
    proc, url = start_stack(tmp, speed)
    rows: list[tuple[float, dict]] = []
    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                              args=["--no-sandbox"])
            page = await (await browser.new_context(viewport={"width": 1440, "height": 1000})).new_page()
            page.on("dialog", lambda d: d.accept())
            page.on("pageerror", lambda e: log("PAGE ERROR", e))
            await open_session(page, url)
            cdp = await page.context.new_cdp_session(page)
            await cdp.send("Performance.enable")
            log(f"started at {url}; sampling every {every:.0f} s for {minutes} min at {speed}x")
            t0 = time.monotonic()
            cpu0 = os.times()
            while True:
                elapsed = time.monotonic() - t0
                s = await sample(cdp, page)
                rows.append((elapsed, s))
                log(f"{elapsed / 60:6.1f} min  heap {s['heap_kb']:8.0f} KB  nodes {s['nodes']:6d}  "
                    f"listeners {s['listeners']:4d}  docs {s['docs']}  {s['buffers']}")
                if elapsed >= minutes * 60:
                    break
                if shots and len(rows) % max(1, int(300 / every)) == 1:
                    await page.screenshot(path=str(shots / f"t{int(elapsed):05d}.png"), full_page=True)
                await asyncio.sleep(every)  # a sampling period of wall time: what is measured is memory, not time
            if shots:
                await page.screenshot(path=str(shots / "last.png"), full_page=True)
            await browser.close()
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
        shutil.rmtree(tmp, ignore_errors=True)
    half = [r for r in rows if r[0] >= rows[-1][0] / 2]
    (ta, a), (tb, b) = half[0], half[-1]
    market_hours = (tb - ta) * speed / 3600
    per_hour = (b["heap_kb"] - a["heap_kb"]) / market_hours if market_hours else 0.0
    heaps = [s["heap_kb"] for _, s in rows]
    print(f"\nload {os.getloadavg()}  bench CPU {os.times().user - cpu0.user:.1f} s user")
    print(f"heap after GC: start {heaps[0]:.0f} KB, min {min(heaps):.0f}, max {max(heaps):.0f}, end {heaps[-1]:.0f}")
    print(f"nodes {rows[0][1]['nodes']} -> {rows[-1][1]['nodes']} (max {max(s['nodes'] for _, s in rows)}), "
          f"listeners {rows[0][1]['listeners']} -> {rows[-1][1]['listeners']}")
    print(f"last half ({market_hours:.1f} market hours): heap {per_hour:+.0f} KB per market hour; "
          f"bound {BOUND_KB_PER_HOUR:.0f} KB -> {'BOUNDED' if per_hour <= BOUND_KB_PER_HOUR else 'GROWING'}")
    return 0 if per_hour <= BOUND_KB_PER_HOUR else 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=20)
    ap.add_argument("--speed", type=float, default=60)
    ap.add_argument("--every", type=float, default=30, help="seconds between samples")
    ap.add_argument("--shots", default="", help="directory for a screenshot every 5 minutes")
    a = ap.parse_args()
    shots = Path(a.shots) if a.shots else None
    if shots:
        shots.mkdir(parents=True, exist_ok=True)
    raise SystemExit(asyncio.run(run(a.minutes, a.speed, a.every, shots, False)))


if __name__ == "__main__":
    main()
