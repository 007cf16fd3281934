"""A trader's whole day in a real headless Chromium against the real stack on loopback: nats-server,
a kite_sim at high speed, the three workers in-process and the gateway under uvicorn.

Log in with the OTP (dev mode shows it), connect Kite on kite_sim's login page, add ema_crossover
with short EMAs from the generated form, pick NIFTY 50 by active search, Start, watch ticks, a signal
and an order arrive over SSE, Stop, read the report, log out. Every wait is on a page element."""

from __future__ import annotations

import os
import re
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright, expect

from gateway import users
from shared import natsd
from tests.gateway.conftest import serve, serve_with_workers
from tests.helpers import stack_settings
from tests.simkit import PASSWORD, USER_ID, start_sim

pytestmark = [pytest.mark.slow(seconds=48), pytest.mark.browser, pytest.mark.timeout(150)]

DOCS = Path(__file__).resolve().parents[2] / "docs"
SIM_SPEED = 600.0  # a 5-minute bar every half second of wall time


@pytest.fixture
async def stack(nats_server, tmp_path, bus):
    port = natsd.free_port()
    sim = start_sim(tmp_path, speed=SIM_SPEED, redirect_url=f"http://127.0.0.1:{port}/auth/kite/callback")
    data = tmp_path / "var"
    data.mkdir()
    settings = stack_settings(nats_server, data, sim, gateway_port=port, env="dev")
    users.ensure_demo_user(settings)
    try:
        async with serve_with_workers(settings, bus) as gw:
            yield gw
    finally:
        sim.stop()


@pytest.fixture
def shots(tmp_path) -> Path:
    """Where the screenshots go: the test's tmp dir, or docs/ with UPDATE_SCREENSHOTS=1 (so a plain
    test run leaves the work tree clean)."""
    return DOCS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path


@pytest.fixture
async def page(chromium):
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        context = await browser.new_context(viewport={"width": 1440, "height": 1000})
        pg = await context.new_page()
        pg.on("dialog", lambda dialog: dialog.accept())  # hx-confirm on Stop
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        blocked: list[str] = []  # the gateway's Content-Security-Policy refused something the page does
        pg.on("console", lambda msg: blocked.append(msg.text) if "Content Security Policy" in msg.text else None)
        yield pg
        await browser.close()
        assert not errors, f"JavaScript errors on the page: {errors}"
        assert not blocked, f"CSP violations: {blocked}"


async def log_in(page: Page, url: str, shots: Path) -> None:
    await page.goto(url + "/")
    await expect(page).to_have_url(url + "/login")
    await page.fill("input[name=zerodha_id]", USER_ID)
    await page.fill("input[name=email]", "demo@kta.local")
    await page.click("button[type=submit]")
    code = await page.locator("#dev-otp").inner_text()
    await page.screenshot(path=str(shots / "screenshot-login.png"))
    await page.fill("input[name=otp]", code)
    await page.click("button[type=submit]")
    await expect(page).to_have_url(url + "/")
    await expect(page.locator("#broker-pill")).to_have_text("Kite not connected")


@asynccontextmanager
async def logged_in(nats_server, tmp_path: Path, page: Page, shots: Path):
    """A gateway alone (no workers) with the demo user logged in and the page's live feed open: a test then
    hands the page what it needs over NATS or the SSE stream itself."""
    data = tmp_path / "var"
    data.mkdir()
    settings = stack_settings(nats_server, data, gateway_port=natsd.free_port(), env="dev")
    users.ensure_demo_user(settings)
    async with serve(settings) as gw:
        await log_in(page, gw.url, shots)
        await expect(page.locator("#sse-pill")).to_have_text("live feed")  # the gateway's subscriptions are live
        yield gw


async def connect_kite(page: Page, url: str) -> None:
    await page.click("text=Connect Kite")
    await page.fill("#userid", USER_ID)
    await page.fill("#password", PASSWORD)
    await page.locator("#password").press("Enter")
    await expect(page).to_have_url(url + "/")
    await expect(page.locator("#broker-pill")).to_have_text("Kite connected")


async def add_strategy(page: Page) -> None:
    select = page.locator("#strategy-select")
    if await select.input_value() != "ema_crossover":
        async with page.expect_response("**/ui/strategies/form?*"):
            await select.select_option("ema_crossover")
    # the strategy worker refuses a fast EMA longer than the slow; the form says so next to the field
    await page.fill("#param-fast", "9")
    await page.fill("#param-slow", "8")
    await page.click("#add-strategy")
    await expect(page.locator("#error-fast")).to_contain_text("shorter than")
    await expect(page.locator("#param-slow")).to_have_value("8")
    await page.fill("#param-fast", "")  # an emptied field is named, not silently defaulted
    await page.click("#add-strategy")
    await expect(page.locator("#error-fast")).to_contain_text("a value is needed")
    await page.fill("#param-fast", "3")
    await page.click("#add-strategy")
    await expect(page.locator("#strategy-added")).to_contain_text("ema_crossover")
    await expect(page.locator("#strategy-list tbody:not(.head) tr")).to_have_count(1)


async def pick_nifty(page: Page) -> None:
    await page.locator("#symbol-search").press_sequentially("NIFTY 5", delay=20)
    hit = page.locator("#symbol-results li", has_text="NIFTY 50").first
    async with page.expect_response("**/ui/symbols/pick?*"):
        await hit.locator("button.pick").click()
    await expect(page.locator("#picked .chip")).to_have_text("NSE:NIFTY 50×")
    async with page.expect_response("**/ui/symbols/pick?*"):
        await hit.locator("button.pick").click()  # picked twice: still one chip
    await expect(page.locator("#picked .chip")).to_have_count(1)


async def day_so_far_on_the_chart(page: Page) -> None:
    """A reloaded dashboard's price chart draws the day so far — Kite's minute closes, each at its minute's last
    second — before the ticks heard since the reload (it started empty: only ticks since the page loaded)."""
    chart = page.locator("#price-chart")
    await expect(chart).to_have_attribute("data-history", re.compile(r"^[1-9]\d*$"), timeout=20_000)
    past = int(await chart.get_attribute("data-history"))
    times = await page.evaluate("window.ktaCharts.priceTimes()")
    assert times == sorted(set(times)) and len(times) >= past, times
    assert all(t % 60 == 59 for t in times[:past]) and len(times[:past]) == past


async def flashes_without_animation(page: Page) -> None:
    """Changed cells are lit and then cleared, with no CSS animation: a fading background repainted the whole
    page every frame while ticks flowed (~75 % of a core in Chromium at 60 frames a second)."""
    await page.evaluate("""() => {
      window.__anims = 0; window.__flashes = 0; window.__lit = null;
      // (the request spinner, .htmx-indicator, spins while a panel refreshes: not a flash)
      document.addEventListener("animationstart", (e) => { if (e.animationName !== "spin") { window.__anims++; } });
      new MutationObserver((ms) => ms.forEach((m) => m.addedNodes.forEach((n) => {
        const lit = n.querySelector && n.querySelector("td.up, td.down");
        if (lit) { window.__flashes++; window.__lit = window.__lit || lit; }
      }))).observe(document.getElementById("ticks-body"), {childList: true, subtree: true});
    }""")
    await page.wait_for_function("() => window.__flashes >= 3", timeout=20_000)
    await page.wait_for_function(
        "() => !window.__lit.classList.contains('up') && !window.__lit.classList.contains('down')", timeout=10_000)
    assert await page.evaluate("window.__anims") == 0


async def test_trader_journey(stack, page, shots):
    url = stack.url
    await log_in(page, url, shots)
    await connect_kite(page, url)
    await add_strategy(page)
    await pick_nifty(page)

    await page.click("#start")
    await expect(page.locator("#live-note")).to_contain_text("Live on NSE:NIFTY 50", timeout=30_000)
    await expect(page.locator("#live-pill")).to_have_text("live on 1 symbol")
    await expect(page.locator("#kill-pill")).to_have_text("Trading allowed")
    await expect(page.locator("#strategy-list .strategy-state").first).to_have_text("running")
    await expect(page.locator("#sse-pill")).to_have_text("live feed")
    await expect(page.locator("#events li", has_text="live feed")).to_have_count(0)  # no noise for a connect

    ltp = page.locator("#ticks-body tr[data-kind=tick] td[data-k=ltp]").first
    await expect(ltp).to_be_visible(timeout=20_000)
    first = await ltp.inner_text()
    await expect(ltp).not_to_have_text(first, timeout=20_000)  # the row updates in place
    await expect(page.locator("#ticks-body td.sym").first).to_have_text("NIFTY 50")
    await expect(page.locator("#ticks-body td.up, #ticks-body td.down").first).to_be_attached()  # flashed
    await flashes_without_animation(page)

    await expect(page.locator("#signals-body tr[data-kind=signal]").first).to_be_visible(timeout=60_000)
    await expect(page.locator("#orders-body tr[id^=order-]").first).to_be_visible(timeout=30_000)
    await expect(page.locator("#orders-body td.status-COMPLETE").first).to_be_visible(timeout=30_000)
    await expect(page.locator("#positions-table td.sym").first).to_contain_text("NIFTY", timeout=40_000)
    await page.screenshot(path=str(shots / "screenshot.png"), full_page=True)
    await page.set_viewport_size({"width": 390, "height": 844})  # a phone
    await page.screenshot(path=str(shots / "screenshot-phone.png"))
    await page.set_viewport_size({"width": 1440, "height": 1000})

    await page.click("#stop")
    report = page.locator("#eod-report")
    await expect(report).to_be_visible(timeout=30_000)
    # the stop's own reply set the pill, the note and the strategies' state (no later poll needed)
    await expect(page.locator("#live-pill")).to_have_text("stopped")
    await expect(page.locator("#live-note")).to_contain_text("open positions kept, each protected")  # the default
    await expect(page.locator("#strategy-list .strategy-state").first).to_have_text("stopped")
    await expect(report).to_be_in_viewport()  # the report is where the trader looks, not below the fold
    # the report is the day's (the exchange's: at 600x a day can roll while the journey runs): its order counts
    # are that day's journal's, as the journal has them a moment later (a stop may fill, a day's stop be placed)
    day = await page.locator("#report-day").inner_text()
    filled, total = map(int, (await page.locator("#report-orders").inner_text()).split(" / "))
    later = await (await page.request.get(f"{url}/api/execution/summary", params={"day": day})).json()
    assert filled <= later["filled_orders"] and total <= later["total_orders"], (day, filled, total, later)
    await report.screenshot(path=str(shots / "screenshot-report.png"))
    await expect(page.locator("#csv-link")).to_have_attribute("href", "/api/journal/trades.csv")

    # after Stop and a reload the session's symbols are still picked: Start again needs no new search
    await page.reload()
    await expect(page.locator("#picked .chip")).to_have_text("NSE:NIFTY 50×")
    await expect(page.locator("#last-symbols-note")).to_contain_text("last session's symbols")
    await page.click("#start")
    await expect(page.locator("#live-note")).to_contain_text("Live on NSE:NIFTY 50", timeout=30_000)
    await expect(page.locator("#live-pill")).to_have_text("live on 1 symbol")
    await day_so_far_on_the_chart(page)
    await page.click("#stop")
    await expect(page.locator("#live-pill")).to_have_text("stopped", timeout=30_000)

    await page.click("#option-chain summary")
    await page.click("#option-chain button[type=submit]")
    await expect(page.locator("#chain-atm td.strike")).to_be_visible(timeout=20_000)
    await expect(page.locator("#chain-pcr")).not_to_have_text("")
    await page.click("#scanner summary")
    await page.fill("#scan-symbols", "NSE:INFY, NSE:TCS, NSE:RELIANCE")
    await page.fill("#scan-min_price", "0")
    await page.select_option("#scan-sort_by", "symbol")
    await page.click("#scan-go")
    await expect(page.locator("#scan-table tbody tr")).to_have_count(3, timeout=20_000)
    await expect(page.locator("#scan-table tbody tr").first).to_have_attribute("data-symbol", "NSE:INFY")
    await expect(page.locator("#scan-summary")).to_contain_text("Scanned the 3 symbol(s) given")  # its universe
    await page.locator("#scanner").screenshot(path=str(shots / "screenshot-scanner.png"))
    await page.fill("#scan-symbols", "NSE:NOSUCHCO")
    await page.click("#scan-go")
    await expect(page.locator("#scan-error")).to_contain_text("NSE:NOSUCHCO")
    await expect(page.locator("#flash")).to_be_hidden()  # no request failed along the way

    csv = await page.request.get(url + "/api/journal/trades.csv")  # the report's download, same session
    assert csv.ok and csv.headers["content-type"].startswith("text/csv")
    text = await csv.text()
    assert "NIFTY" in text
    assert not any(cell == "'" for line in text.splitlines() for cell in line.split(","))  # empty stays empty
    orders = (await (await page.request.get(url + "/api/orders")).json())["items"]
    placed = [o for o in orders if o.get("order_id")]
    assert placed and all(o.get("order_timestamp") for o in placed)  # the exchange's clock, from Kite's book

    await page.click("#logout")
    await expect(page).to_have_url(url + "/login")
    await page.goto(url + "/")
    await expect(page).to_have_url(url + "/login")  # the session is gone
