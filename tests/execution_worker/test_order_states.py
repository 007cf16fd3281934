"""The order state machine at work on broker updates from kite_sim: a stale update is logged and
refused (the journal never regresses), a fill reported after a cancel is accepted, and the order
gate stops modifications past the per-order cap before they reach the broker."""

import logging

import msgspec

from execution_worker import placing
from execution_worker.engine import Desk
from shared.trading import planning as o
from execution_worker.order_gate import OrderGate
from shared.trading.risk import RiskManager
from shared import messages as m
from tests.execution_worker.conftest import make_stack
from tests.execution_worker.kit import USER, broker, signal
from tests.helpers import eventually

QUIET = {"reconcile_interval": 3600.0, "positions_interval": 3600.0}


async def resting_order(desk: Desk, kite, sid: str):
    """A LIMIT buy well under the market: it rests OPEN. Returns (journal row, broker view)."""
    ltp = (await broker(kite.ltp, "NSE:INFY"))["NSE:INFY"].last_price
    sig = msgspec.structs.replace(signal(sid, qty=1), order_type=m.OrderType.LIMIT, price=m.to_paise(ltp * 0.9))
    (req,) = o.signal_requests(sig, None, -1)
    order_id = await placing.place(desk, req)
    assert order_id
    view = await eventually(lambda: _open(kite, order_id), what="the order resting OPEN")
    return desk.book.get(req.tag), view


async def _open(kite, order_id):
    history = await broker(kite.order_history, order_id)
    return history[-1] if history and history[-1].status == "OPEN" else None


async def test_stale_updates_are_refused_and_a_fill_after_a_cancel_is_accepted(bus, sim, data_dir, caplog):
    async with make_stack(bus, sim, data_dir, **QUIET) as (settings, journal, kite):
        desk = Desk(USER, bus, journal, kite, RiskManager(USER, None, journal), {}, -1, 0.5)
        row, open_view = await resting_order(desk, kite, "state-1")
        await broker(kite.cancel_order, "regular", row.order_id)
        await placing.refresh(desk, row)
        assert journal.order_by_tag(row.tag)["status"] == "CANCELLED"

        with caplog.at_level(logging.WARNING, logger="kta.execution"):
            await desk.on_broker(open_view)  # the OPEN update, delivered late
        assert journal.order_by_tag(row.tag)["status"] == "CANCELLED"
        assert "refused transition CANCELLED -> OPEN" in caplog.text

        # the exchange filled it before the cancel reached it: the fill is the truth
        filled = msgspec.structs.replace(open_view, status="COMPLETE", filled_quantity=1, pending_quantity=0,
                                         average_price=open_view.price)
        await desk.on_broker(filled)
        after = journal.order_by_tag(row.tag)
        assert (after["status"], after["filled_quantity"]) == ("COMPLETE", 1)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="kta.execution"):
            await desk.on_broker(msgspec.structs.replace(open_view, status="CANCELLED"))
        assert journal.order_by_tag(row.tag)["status"] == "COMPLETE"
        assert "refused transition COMPLETE -> CANCELLED" in caplog.text


async def test_modifications_stop_at_the_per_order_cap_before_the_broker(bus, sim, data_dir):
    async with make_stack(bus, sim, data_dir, **QUIET) as (settings, journal, kite):
        desk = Desk(USER, bus, journal, kite, RiskManager(USER, None, journal), {}, -1, 0.5,
                    gate=OrderGate(modifications=2))
        row, view = await resting_order(desk, kite, "modify-1")
        price = m.to_paise(view.price)
        assert await placing.modify(desk, row, price=price - 5) == ""
        assert await placing.modify(desk, row, price=price - 10) == ""
        refused = await placing.modify(desk, row, price=price - 15)  # refused by the gate: never sent
        assert "modified 2 times" in refused
        history = await broker(kite.order_history, row.order_id)
        assert m.to_paise(history[-1].price) == price - 10
        assert sum(h.status == "MODIFIED" for h in history) == 2
        await broker(kite.cancel_order, "regular", row.order_id)
