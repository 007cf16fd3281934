"""A square-off sends its cancels (and then each side's flattens) together, paced by the order gate, not one
broker round trip after another: 16 positions under a broker answering in 0.4 s took 14 s to flatten at kta's
MIS cutoff (soak seed 19), past the time the trader — or the broker's own square-off — allows."""

import asyncio
import time

import pytest

from execution_worker import controls, protector, signals
from execution_worker.order_gate import OrderGate
from tests.execution_worker.kit import fresh_desk, signal
from tests.helpers import eventually

pytestmark = pytest.mark.slow(seconds=10)
STRATEGIES = ("together-a", "together-b", "together-c")


async def test_a_square_off_sends_its_cancels_together_and_flattens_every_position(bus, sim, data_dir):
    desk, kite, _ = fresh_desk(sim, bus, data_dir)
    protector.started(desk, 0.5)
    next_second = asyncio.Event()
    square = None
    try:
        for sid in STRATEGIES:
            await signals.on_signal(desk, signal(f"{sid}-{time.time_ns()}", qty=2, stop=147000, strategy_id=sid))

        def protected(sid: str) -> bool:
            return desk.tracker.held(sid, "NSE", "INFY")[0] == 2 and any(
                o.is_working and o.order_id for o in desk.book if o.strategy_id == sid and o.kind == "stop_loss")

        await eventually(lambda: all(protected(s) for s in STRATEGIES), what="three positions, each with its stop")

        async def a_second_later(_: float) -> None:
            await next_second.wait()

        # one order call a second on a clock that stands still: the first cancel goes, the others wait at the gate
        now = 1_000.0
        desk.gate = OrderGate(per_second=1, clock=lambda: now, sleep=a_second_later)
        square = asyncio.ensure_future(controls.square_off(desk, "test: together"))
        await eventually(lambda: desk.gate.queued == 2, what="the other two stops' cancels waiting together")
        desk.gate.clock, desk.gate.sleep = time.time, asyncio.sleep  # time moves on
        next_second.set()
        result = await asyncio.wait_for(square, 30)
        assert result["cancelled"] == 3 and len(result["placed"]) == 3, result
        await eventually(lambda: all(desk.tracker.held(s, "NSE", "INFY")[0] == 0 for s in STRATEGIES),
                         what="every position flat")
        await eventually(lambda: not [o for o in desk.book if o.is_working], what="nothing working")
    finally:
        desk.gate.clock, desk.gate.sleep = time.time, asyncio.sleep  # (a gate waiting on the still clock spins)
        next_second.set()
        if square is not None and not square.done():
            await asyncio.wait([square], timeout=10)
        sim.reset_faults()
        await kite.aclose()
