"""A signal handled again while its first handling's order still waits to be sent (JetStream redelivers it when the
first delivery's in-progress acks were lost: a NATS node killed under the worker). The second handling must not
finish — and have the message acked — before that order is at the broker: it used to return at once ("already being
submitted"), the message was acked, and a worker killed then left the order INITIALIZED, never sent and never
redelivered (tests/deploy/test_topology, session 8: "accepted but never placed", the survivor stopped 0.3 s after a
burst of "already being submitted")."""

import asyncio
import logging
import time

from execution_worker import signals
from execution_worker.order_gate import OrderGate
from shared.trading.order import OrderState
from tests.execution_worker.kit import broker, fresh_desk, signal
from tests.helpers import eventually


async def test_a_signal_handled_again_while_its_order_waits_to_be_sent_ends_after_it(bus, sim, data_dir, caplog):
    caplog.set_level(logging.WARNING, logger="kta.execution")
    desk, kite, _ = fresh_desk(sim, bus, data_dir)
    freed = asyncio.Event()

    async def wait(seconds: float) -> None:
        await freed.wait()

    desk.gate = OrderGate(per_second=1, clock=lambda: 1_000.0 + 2.0 * freed.is_set(), sleep=wait)
    try:
        await desk.gate.acquire()  # the second's one order: the signal's waits at the gate
        sig = signal(f"again-{time.time_ns()}", qty=1, strategy_id="again-1")
        first = asyncio.ensure_future(signals.on_signal(desk, sig))
        await eventually(lambda: desk.gate.queued, what="its order at the gate")
        (order,) = [o for o in desk.book if o.signal_id == sig.id]
        seen: list[OrderState] = []
        again = asyncio.ensure_future(signals.on_signal(desk, sig))  # the redelivery
        again.add_done_callback(lambda _: seen.append(order.state))
        await eventually(lambda: again.done() or "its answer is awaited" in caplog.text, what="the second handling")
        freed.set()
        await asyncio.wait_for(asyncio.gather(first, again), 30)
        assert seen and seen[0] not in (OrderState.INITIALIZED, OrderState.SUBMITTING), \
            f"the second handling ended with its order {seen[0]}: its message would be acked before it was sent"
        assert order.order_id
        assert [o.order_id for o in await broker(kite.orders) if o.tag == order.tag] == [order.order_id]  # once
    finally:
        freed.set()
        await kite.aclose()
