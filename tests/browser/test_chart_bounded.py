"""A dashboard open all week keeps one exchange day on its charts: the price line, its marks and the P&L curve
start over at a day change. They kept every day's points (the JS heap grew ~2 KB a second at 60x, never
levelling off: bench/dashboard_memory.py).

Real Chromium against the real gateway under uvicorn and nats-server; tick rows rendered by the gateway's own
fragment renderer are handed to the page the way the SSE extension hands it a "ticks" message."""

from __future__ import annotations

import json

import pytest
from playwright.async_api import expect

from gateway import fragments
from shared import messages as m
from tests.browser.test_journey import logged_in, page, shots  # noqa: F401 - fixtures
from tests.simkit import USER_ID

pytestmark = [pytest.mark.slow(seconds=12), pytest.mark.browser, pytest.mark.timeout(120)]

DAY1 = 1_700_000_000 - 1_700_000_000 % 86400 + 4 * 3600  # 09:30 IST on one day (epoch seconds)
SSE_TICKS = """([html]) => {
  const body = document.getElementById('ticks-body');
  body.dispatchEvent(new CustomEvent('htmx:sseBeforeMessage', {bubbles: true, cancelable: true,
    detail: {data: html, type: 'ticks'}}));
  return window.ktaChartSizes();
}"""
SSE_SIGNALS = SSE_TICKS.replace("ticks-body", "signals-body").replace("'ticks'", "'signals'")
# the extension swaps a positions event into the panel, then tells the page (htmx:sseMessage) it did
SSE_POSITIONS = """([html]) => {
  const panel = document.getElementById('positions-live');
  panel.innerHTML = html;
  panel.dispatchEvent(new CustomEvent('htmx:sseMessage', {bubbles: true, detail: {data: html, type: 'positions'}}));
  return window.ktaChartSizes();
}"""


def rows(start: int, n: int) -> str:
    render = fragments.renderer({256265: "NIFTY 50"}.get)
    ticks = [m.Tick(instrument_token=256265, mode="quote", tradable=False, last_price=24500.0 + i % 7,
                    exchange_timestamp=start + i) for i in range(n)]
    return "".join(render("ticks", [t], USER_ID) for t in ticks)


def signals(start: int, n: int) -> str:
    render = fragments.renderer({256265: "NIFTY 50"}.get)
    return "".join(render("signals", m.Signal(
        id=f"s{start}-{i}", user_id=USER_ID, strategy_id="ema-1", strategy="ema_crossover", exchange="NSE",
        tradingsymbol="NIFTY 50", instrument_token=256265, transaction_type="BUY", quantity=1, tick_ts=start + i),
        USER_ID) for i in range(n))


def positions(at: int, pnl: int) -> str:
    return fragments.renderer({}.get)("positions", m.PositionSnapshot(
        user_id=USER_ID, ts=at * 10**9, positions=[], day_pnl=pnl, exchange_ts=at * 10**9), USER_ID)


async def test_the_price_chart_keeps_one_exchange_day(nats_server, tmp_path, page, shots):  # noqa: F811
    async with logged_in(nats_server, tmp_path, page, shots):
        day1 = await page.evaluate(SSE_TICKS, [rows(DAY1, 300)])
        assert day1["price"] == 300
        await page.evaluate(SSE_SIGNALS, [signals(DAY1, 5)])
        for i in range(20):
            await page.evaluate(SSE_TICKS, [rows(DAY1 + 300 + i, 1)])
            day1 = await page.evaluate(SSE_POSITIONS, [positions(DAY1 + 300 + i, 100 * i)])
        assert day1 == {"price": 320, "pnl": 20, "markers": 5, "marked": 5}, json.dumps(day1)
        day2 = await page.evaluate(SSE_TICKS, [rows(DAY1 + 86400, 40)])
        assert day2["price"] == 40, json.dumps(day2)  # was 340: every day's points kept
        assert day2["markers"] == day2["marked"] == 0, json.dumps(day2)  # the marks of the day before went with it
        day2 = await page.evaluate(SSE_POSITIONS, [positions(DAY1 + 86400 + 40, 500)])
        assert day2["pnl"] == 1, json.dumps(day2)  # the P&L curve starts over with the day's first point
        assert await page.locator("#ticks-body tr").count() == 1  # one row an instrument, the latest
