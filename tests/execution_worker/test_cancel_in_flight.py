"""An order cancelled while its placement is still on its way to the broker is cancelled once the broker names
it. ``placing.cancel`` returned at once for an order with no broker id yet, so a stop the protector was placing
as a square-off began rested on at the broker, and the square-off's wait for it to end ran its 10 s out while
the broker's own MIS square-off came (tests/system, CI at load 5-9)."""

import asyncio
import time

import pytest

from execution_worker import placing
from shared import messages as m
from shared.trading import planning
from shared.trading.order import OrderState
from tests.execution_worker.kit import USER, broker, fresh_desk
from tests.helpers import eventually

pytestmark = pytest.mark.slow(seconds=5)


async def test_an_order_cancelled_while_it_is_being_placed_is_cancelled_once_named(bus, sim, data_dir):
    desk, kite, _ = fresh_desk(sim, bus, data_dir)
    req = m.OrderRequest(user_id=USER, exchange=m.Exchange.NSE, tradingsymbol="INFY", instrument_token=408065,
                         transaction_type=m.TransactionType.SELL, order_type=m.OrderType.SL, quantity=1,
                         product=m.Product.MIS, price=1390_00, trigger_price=1400_00, kind="stop_loss",
                         tag=planning.make_tag(f"in-flight-{time.time_ns()}", "stop_loss"))
    sim.faults(latency_ms=1500)  # the broker takes its time answering the placement
    try:
        placing_it = asyncio.create_task(placing.place(desk, req))
        await eventually(lambda: (o := desk.book.get(req.tag)) is not None and o.state is OrderState.SUBMITTING,
                         what="the stop on its way to the broker")
        order = desk.book.get(req.tag)
        assert not order.order_id
        await placing.cancel(desk, order, "test: cancelled while being placed")
        order_id = await placing_it
        assert order_id and order.cancel_reason == "test: cancelled while being placed"
        sim.reset_faults()
        await placing.wait_final(desk, [order], 10)
        assert order.state is OrderState.CANCELLED
        at_broker = {o.order_id: o.status for o in await broker(kite.orders)}
        assert at_broker[order_id] == "CANCELLED"
    finally:
        sim.reset_faults()
        await kite.aclose()
