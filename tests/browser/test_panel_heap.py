"""A panel redrawn on every live event must not leave memory behind in the page. Chromium (156) keeps a media query
set for every `<thead>` / `<tfoot>` it lays out, for good: the Positions panel, redrawn on each positions event
with its table's header group, grew the page's Blink heap by one set an event (~600 a market day at 60x:
bench/dashboard_memory.py's heap snapshots, `python -m bench.heap_snapshot`). The panels redrawn on live events
head their tables with a `<tbody class="head">` of `<th>` cells (sticky the same), which leaves nothing.

Real Chromium against the real gateway under uvicorn and nats-server; the broker's positions are published on the
user's subject (no worker runs) and each is waited for on the page; the page's heap is read in CDP snapshots."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.async_api import expect

from bench import heap_snapshot
from gateway.templating import rupees
from shared import messages as m
from shared import subjects
from tests.browser.test_journey import logged_in, page, shots  # noqa: F401 - fixtures
from tests.simkit import USER_ID

pytestmark = [pytest.mark.slow(seconds=15), pytest.mark.browser, pytest.mark.timeout(120)]

EVENTS = 30


def snapshot(ts: int, pnl: int) -> m.PositionSnapshot:
    held = m.Position(tradingsymbol="INFY", exchange="NSE", instrument_token=408065, quantity=1,
                      average_price=1500_00, last_price=1500_00 + pnl, pnl=pnl)
    return m.PositionSnapshot(user_id=USER_ID, ts=ts, positions=[held], day_pnl=pnl, unrealised=pnl)


async def media_query_sets(cdp, path: Path) -> int:
    await heap_snapshot.take(cdp, path)
    return heap_snapshot.summary(path).get("[native] blink::MediaQuerySet", [0])[0]


async def test_the_positions_panel_redrawn_on_each_event_leaves_nothing_behind(nats_server, tmp_path, bus, page,  # noqa: F811
                                                                                shots):  # noqa: F811
    async with logged_in(nats_server, tmp_path, page, shots):
        cdp = await page.context.new_cdp_session(page)
        t = time.time_ns()
        await bus.publish(subjects.positions(USER_ID), snapshot(t, 100))
        await expect(page.locator("#day-pnl")).to_have_text(rupees(100))
        before = await media_query_sets(cdp, tmp_path / "before.heapsnapshot")
        for i in range(1, EVENTS + 1):
            await bus.publish(subjects.positions(USER_ID), snapshot(t + i, 100 + i))
            await expect(page.locator("#day-pnl")).to_have_text(rupees(100 + i))
        assert await page.locator("#positions-live th").count() == 4  # the table is drawn, with its header
        after = await media_query_sets(cdp, tmp_path / "after.heapsnapshot")
        assert after - before < EVENTS // 3, (before, after)  # was one a redraw: +30


REDRAWN = ["positions_table", "strategy_list", "strategy_pnl", "holdings", "order_book", "alert_recent",
           "payoff_view"]  # each swapped in again on live events (sse-swap or data-refresh); payoff_view in the option book


def test_no_panel_redrawn_on_live_events_draws_a_header_group():
    from gateway.templating import TEMPLATES

    for name in REDRAWN:
        source = (TEMPLATES / "partials" / f"{name}.html").read_text()
        assert "<thead" not in source and "<tfoot" not in source, name
