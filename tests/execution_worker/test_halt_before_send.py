"""An entry decided before the kill switch tripped and still on its way — waiting for the order gate, behind the
stops, targets and flattens that go first — is not sent once the switch is HALTED: withdrawn, and its strategy
told. Soak seed 41: chaos-2's SELL 12 RELIANCE, accepted just before the trip, reached the broker 0.9 s after it
(the square-off flattened it again)."""

import asyncio
import time

import pytest

from execution_worker import signals
from execution_worker.order_gate import OrderGate
from shared.messages import KillSwitchState
from shared.trading.order import WITHDRAWN, OrderState
from tests.execution_worker.kit import broker, fresh_desk, signal
from tests.helpers import eventually

pytestmark = pytest.mark.slow(seconds=5)


async def test_an_entry_waiting_for_the_order_gate_when_the_kill_switch_trips_is_not_sent(bus, sim, data_dir):
    desk, kite, _ = fresh_desk(sim, bus, data_dir)
    opened = asyncio.Event()

    async def gate_wait(seconds: float) -> None:  # the gate's window frees when the test says so
        await opened.wait()

    desk.gate = OrderGate(per_second=1, clock=lambda: 1_000.0 + 2.0 * opened.is_set(), sleep=gate_wait)
    desk.gate.admit(1_000.0)  # this second's one order went out already: the next waits for the window
    sid = f"halt-{time.time_ns()}"
    try:
        async with desk.lock:
            sending = await signals.decide(desk, signal(sid, qty=3, strategy_id="halt-1"))
        assert sending is not None and desk.journal.signal_decision(sid) == "accepted"
        placing = asyncio.ensure_future(sending)
        await eventually(lambda: desk.gate.queued == 1, what="the entry waiting at the order gate")
        assert desk.risk.kill_switch.halt("test: the day's loss limit") is not None
        opened.set()
        await asyncio.wait_for(placing, 10)
        (order,) = [o for o in desk.book if o.signal_id == sid]
        assert (order.state, order.failure, order.order_id) == (OrderState.FAILED, WITHDRAWN, ""), order
        assert order.status_message.startswith("withdrawn before it was sent: kill switch HALTED"), order
        assert desk.risk.snapshot().state is KillSwitchState.HALTED
        assert not [o for o in await broker(kite.orders) if o.tag == order.tag]  # nothing reached the broker
    finally:
        opened.set()
        await kite.aclose()
