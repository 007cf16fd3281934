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


def rows(start: int, n: int) -> str:
    render = fragments.renderer({256265: "NIFTY 50"}.get)
    ticks = [m.Tick(instrument_token=256265, mode="quote", tradable=False, last_price=24500.0 + i % 7,
                    exchange_timestamp=start + i) for i in range(n)]
    return "".join(render("ticks", [t], USER_ID) for t in ticks)


async def test_the_price_chart_keeps_one_exchange_day(nats_server, tmp_path, page, shots):  # noqa: F811
    async with logged_in(nats_server, tmp_path, page, shots):
        day1 = await page.evaluate(SSE_TICKS, [rows(DAY1, 300)])
        assert day1["price"] == 300
        day2 = await page.evaluate(SSE_TICKS, [rows(DAY1 + 86400, 40)])
        assert day2["price"] == 40, json.dumps(day2)  # was 340: every day's points kept
        assert await page.locator("#ticks-body tr").count() == 1  # one row an instrument, the latest
