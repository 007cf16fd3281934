"""A square-off waits for the orders it cancelled to be final by reading the broker's order book once a round for
all of them, not each order's history: under Kite's 10 requests/s per api_key twenty read-backs a round drew 429s
(and the wait ran on while they were retried)."""

import pytest

from execution_worker import controls, protector
from shared.trading import planning
from shared.trading.order import OrderState
from tests.execution_worker.kit import broker, fresh_desk

pytestmark = pytest.mark.slow(seconds=5)
WORKING = 6
HISTORY, BOOK = "GET /orders/{order_id}", "GET /orders"


async def test_a_square_off_reads_the_broker_book_once_a_round_for_every_order_it_waits_on(bus, sim, data_dir):
    """Six of kta's orders work at the broker that the desk's book lacks (placed before a crash): the square-off
    adopts and cancels them and, with no WebSocket relaying updates, reads them back until they are final. Every
    order ends CANCELLED in the book, and the broker was asked for the order book, never for an order's history
    (before: one history read per order per round, six here). A 429 on the way is retried."""
    desk, kite, _ = fresh_desk(sim, bus, data_dir)
    protector.started(desk, 0.5)
    try:
        sim.faults(hold_fills=True)
        ids = [await broker(kite.place_order, "regular", "NSE", "INFY", "BUY", 1, "MIS", "LIMIT", price=1400.0,
                            tag=planning.make_tag(f"before-a-crash|{n}", "entry"))
               for n in range(WORKING)]
        before = sim.get("/sim/requests").json()
        sim.faults(rate_limit_next=1)
        result = await controls.square_off(desk, "test: one read a round")
        asked = sim.get("/sim/requests").json()
        assert result["cancelled"] == WORKING, result
        assert [desk.book.by_order_id(i).state for i in ids] == [OrderState.CANCELLED] * WORKING
        assert sim.get("/sim/faults").json()["counts"].get("rate_limited", 0) >= 1  # the 429 was answered
        assert asked.get(HISTORY, 0) - before.get(HISTORY, 0) == 0, (before, asked)
        # the square-off's own read of the broker's book, the 429'd try, and the rounds of the wait (one here)
        assert 2 <= asked[BOOK] - before.get(BOOK, 0) <= 4, (before, asked)
    finally:
        sim.reset_faults()
        await kite.aclose()
