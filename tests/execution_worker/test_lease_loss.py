"""A command in hand when its user's partition lease is lost: the desk it holds is closed under it (its Kite
client closed). The trader is told, in words and with a retryable code, that the account moved — never "internal:
Cannot send a request, as the client has been closed" (session 8, test_parity at -n 8) — nothing was sent for it,
and the same command tried again is served by the desk that owns the user now: one order at the broker."""

import asyncio
import contextlib

import pytest

from execution_worker.main import ExecutionWorker
from execution_worker.order_gate import OrderGate
from gateway.worker_commands import from_reply
from shared import messages as m
from shared import partition, service, subjects
from tests.execution_worker.conftest import make_stack
from tests.execution_worker.kit import USER, broker
from tests.helpers import eventually


@contextlib.asynccontextmanager
async def decision_in_hand(desk):
    """The order waits for the user's decision in hand (a signal's): before it is judged."""
    async with desk.lock:
        yield lambda: desk.lock._waiters


@contextlib.asynccontextmanager
async def gate_full(desk):
    """The order is decided and waits at the order gate (Kite's orders per second): its journal row is planned,
    and it is sent once the window frees — after the desk closed."""
    freed = asyncio.Event()

    async def wait(seconds: float) -> None:
        await freed.wait()

    desk.gate = OrderGate(per_second=1, clock=lambda: 1_000.0 + 2.0 * freed.is_set(), sleep=wait)
    await desk.gate.acquire()  # the second's one order
    try:
        yield lambda: desk.gate.queued
    finally:
        freed.set()


@pytest.mark.parametrize("held", [decision_in_hand, gate_full], ids=["before-the-decision", "at-the-order-gate"])
async def test_a_command_whose_desk_closes_after_a_lease_loss_is_told_to_retry_and_places_once(bus, sim, data_dir,
                                                                                                held):
    workers: list[ExecutionWorker] = []

    async def start(wbus, settings):
        workers.append(await ExecutionWorker(wbus, settings).start())
        return workers[-1]

    async def amain(settings, stop):
        await service.amain("execution", settings, start, stop)

    async with make_stack(bus, sim, data_dir, amain=amain) as (_, journal, kite):
        (worker,) = workers
        await bus.request(subjects.cmd(USER, "execution", "positions"), m.GetPositions(), timeout=30)
        desk = worker.desks.desks[USER]
        order = m.PlaceOrder(exchange=m.Exchange.NSE, tradingsymbol="INFY", quantity=2, client_id="lease-1",
                             transaction_type=m.TransactionType.BUY)
        subject = subjects.cmd(USER, "execution", "place_order")
        async with held(desk) as waiting:  # the order waits (for the decision in hand, or at the gate) ...
            asking = asyncio.ensure_future(bus.request(subject, order, timeout=30))
            await eventually(waiting, what="the order waiting")
            # ... while the worker stalls past its lease: the lease ages out, the next tick finds it gone
            leases = await bus.kv(partition.KV_LEASES, ttl=partition.LEASE_SECONDS)
            await leases.delete(f"execution.p{partition.of(USER)}")
            await worker.parts.tick()  # lets the partition go (the desk closes), claims it back (a new desk)
            assert worker.desks.desks.get(USER) is not desk
        answer = await asking
        assert isinstance(answer, m.Error) and answer.code == "desk_moved", answer
        assert "try again" in answer.message.lower() and "internal" not in answer.message
        assert from_reply(answer).status == 503  # the gateway's "a part of kta is not answering", in these words
        assert desk.closed
        assert await broker(kite.orders) == [], "nothing was sent for it"
        assert {o["state"] for o in journal.orders(USER)} <= {"INITIALIZED"}  # planned at most: not on its way

        again = await bus.request(subject, order, timeout=30)  # the trader tries again: the new desk serves it
        assert isinstance(again, m.Ok), again
        (placed,) = again.data["orders"]
        assert placed["order_id"]
        at_broker = [o for o in await broker(kite.orders) if o.tag == placed["tag"]]
        assert len(at_broker) == 1
        assert [o["tag"] for o in journal.orders(USER)] == [placed["tag"]]
