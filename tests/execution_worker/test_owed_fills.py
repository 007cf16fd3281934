"""A closing order the broker reports filled before its fills are journaled: the position book still says
held, but the position is gone at the broker. Protection must not stop it again (a stop on a closed position
opens one the other way once triggered: soak seed 13, the kill switch's square-off, TCS 0 -> +12)."""

import asyncio
import time

import msgspec
import pytest

from execution_worker import controls, protector, signals
from shared import messages as m
from execution_worker.order_gate import OrderGate
from shared.trading.order import OrderState
from tests.execution_worker.kit import fresh_desk, signal
from tests.helpers import eventually

pytestmark = pytest.mark.slow(seconds=10)


def held(desk, strategy_id: str) -> int:
    return desk.tracker.held(strategy_id, "NSE", "INFY")[0]


def stops_of(desk, strategy_id: str) -> list:
    return [o for o in desk.book if o.strategy_id == strategy_id and o.kind == "stop_loss"]


async def test_a_square_off_leaves_no_stop_on_a_position_whose_flatten_filled_unjournaled(bus, sim, data_dir):
    """Two protected positions are squared off. The first's flatten fills at the broker while the second's waits
    for the order gate, and its fills are not journaled yet (the trade-book read is held back): when the square-off
    lets the positions' protection go, the book still says the first holds 3. Its flatten is not working any more
    but owes the journal 3: that is a closing order too, so no stop is placed for it (before: a new SELL 3 stop
    on a flat position). Once the fills are journaled both are flat with nothing working."""
    desk, kite, _ = fresh_desk(sim, bus, data_dir)
    protector.started(desk, 0.5)
    opened = asyncio.Event()
    square = None
    try:
        for sid in ("owed-a", "owed-b"):
            await signals.on_signal(desk, signal(f"{sid}-{time.time_ns()}", qty=3, stop=147000, strategy_id=sid))
        def protected(sid: str) -> bool:
            return held(desk, sid) == 3 and any(o.is_working and o.order_id for o in stops_of(desk, sid))

        await eventually(lambda: protected("owed-a") and protected("owed-b"), what="both filled and their stops placed")
        before = {o.tag for o in desk.book}

        async def gate_wait(seconds: float) -> None:  # the gate's window frees when the test says so
            await opened.wait()

        # two cancels and the first flatten fit the gate's window; the second flatten waits until the test opens it
        desk.gate = OrderGate(per_second=3, clock=lambda: 1_000.0 + 2.0 * opened.is_set(), sleep=gate_wait)
        async with desk.trade_reads.reading:  # the broker's fills are read (and journaled) once the test lets go
            square = asyncio.ensure_future(controls.square_off(desk, "test: owed fills"))
            first = await eventually(lambda: [o for o in desk.book if o.kind == "flatten" and o.state is OrderState.COMPLETE
                                              and o.unjournaled == 3], what="the first flatten filled, its fills owed")
            assert desk.gate.queued == 1  # the second flatten waits at the gate: the square-off still holds both
            (first,) = first
            opened.set()
            await asyncio.wait_for(square, 10)  # its protection let go: synced with the fills still owed
            late = [o for o in desk.book if o.tag not in before and o.kind == "stop_loss"]
            assert not late, f"a stop placed for {first.strategy_id}, whose flatten had filled: {late}"
            assert held(desk, first.strategy_id) == 3  # (the book still lacked the flatten's fills)
        await eventually(lambda: held(desk, "owed-a") == 0 and held(desk, "owed-b") == 0, what="both flat")
        await eventually(lambda: not [o for o in desk.book if o.is_working], what="nothing working")
    finally:
        opened.set()
        if square is not None and not square.done():
            await asyncio.wait([square], timeout=10)
        sim.reset_faults()
        await kite.aclose()


async def test_an_intraday_square_off_does_not_wait_for_another_products_owed_fills(bus, sim, data_dir):
    """kta's MIS square-off waits, before it reads the positions, for the fills of orders the broker reported filled
    and the journal lacks — of MIS orders: a delivery (CNC) order's fills, unread meanwhile (the trade book read held
    back, as 429s held it in soak seed 107), are not the intraday positions' and must not hold the flatten back.
    Before: the square-off waited on them (10 s and more) with every MIS stop already cancelled: 13 positions
    unprotected for 11 s."""
    desk, kite, _ = fresh_desk(sim, bus, data_dir)
    protector.started(desk, 0.5)
    square = None
    try:
        await signals.on_signal(desk, signal(f"mis-{time.time_ns()}", qty=3, stop=147000, strategy_id="mis-a"))
        await eventually(lambda: held(desk, "mis-a") == 3 and any(o.is_working and o.order_id
                                                                  for o in stops_of(desk, "mis-a")),
                         what="the MIS position filled and protected")
        async with desk.trade_reads.reading:  # the broker's fills are read once the test lets go
            delivery = msgspec.structs.replace(signal(f"cnc-{time.time_ns()}", qty=2, strategy_id="cnc-a"),
                                               product=m.Product.CNC)
            await signals.on_signal(desk, delivery)
            (owed,) = await eventually(lambda: [o for o in desk.book.owing() if o.strategy_id == "cnc-a"],
                                       what="the delivery order filled, its fills owed")
            square = asyncio.ensure_future(controls.square_off(desk, "test: MIS cutoff", product="MIS"))
            await eventually(lambda: [o for o in desk.book if o.kind == "flatten" and o.order_id], timeout=15,
                             what="the MIS flatten placed while the delivery order's fills are still owed")
            assert owed.unjournaled == 2
        await asyncio.wait_for(square, 15)
        await eventually(lambda: held(desk, "mis-a") == 0 and held(desk, "cnc-a") == 2, what="MIS flat, CNC held")
    finally:
        if square is not None and not square.done():
            square.cancel()
        await kite.aclose()
