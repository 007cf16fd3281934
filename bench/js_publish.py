"""CPU of kta's process per JetStream publish — how the execution worker tells an order's events and outcomes
(``Bus.js_publish``: published, the stream's ack awaited) and claims a Kite rate-budget slot (a compare-and-set on
a KV key: ``SharedBudget._update``) — through nats-server with kta's authentication.

The figures are this process's user CPU per publish of an ``OrderEvent`` to its stream and per
compare-and-set; the baselines, in the same run, are nats-py's own ``js.publish`` of the same bytes and its
``kv.update``. Third: an order event as the execution worker tells it (``Bus.publish``: the stream stores it, its
ack is not awaited) against the acked publish. Fourth: an outcome as the execution worker stores it
(``store_later``: published with a reply subject, the ack checked by a callback when it comes; the round ends once
every ack is checked) against the acked publish. Rounds alternate kta and the baseline; the median round is printed
(the machine is shared). Usage: python bench/js_publish.py [publishes per round] [rounds]
"""

from __future__ import annotations

import asyncio
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.stack import Stack, machine_load  # noqa: E402
from shared import messages as m  # noqa: E402
from shared import store_later, subjects  # noqa: E402
from shared.kite.budget import SharedBudget, budget_key  # noqa: E402

USER = "BEN01"


def user_cpu() -> float:
    """This process's user CPU seconds: what kta's code costs (the kernel's share of a loopback round trip, the
    same for both and most of the total, varies with the machine's load and would hide the difference)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_utime


def event(i: int) -> m.OrderEvent:
    return m.OrderEvent(user_id=USER, order_id=f"O{i}", tag=f"T{i:08d}", signal_id=f"s{i}", kind="entry",
                        state="COMPLETE", exchange=m.Exchange.NSE, tradingsymbol="INFY", instrument_token=408065,
                        transaction_type=m.TransactionType.BUY, order_type=m.OrderType.MARKET, product=m.Product.MIS,
                        variety=m.Variety.REGULAR, quantity=1, filled_quantity=1, average_price=150_000,
                        ts=time.time_ns())


async def main(n: int, rounds: int) -> None:
    stack = Stack("kta-bench-jspub-")
    try:
        bus = await stack.bus("bench-jspub")
        await bus.ensure_streams()
        subject = subjects.orders(USER)

        async def ours() -> float:
            t0 = user_cpu()
            for i in range(n):
                await bus.js_publish(subject, event(i))
            return (user_cpu() - t0) / n

        async def theirs() -> float:
            t0 = user_cpu()
            for i in range(n):
                await bus.js.publish(subject, m.encode(event(i)))
            return (user_cpu() - t0) / n

        budget = SharedBudget(bus, "bench-jspub")
        kv = await bus.kv(subjects.KV_RATE_BUDGET, ttl=3600)
        key = budget_key("bench-jspub", "quote")
        revision = [await kv.put(key, b"")]

        async def ours_cas() -> float:
            t0 = user_cpu()
            for _ in range(n):
                revision[0] = await budget._update(key, b"slots", revision[0])
            return (user_cpu() - t0) / n

        async def theirs_cas() -> float:
            t0 = user_cpu()
            for _ in range(n):
                revision[0] = await kv.update(key, b"slots", last=revision[0])
            return (user_cpu() - t0) / n

        async def told() -> float:  # how the execution worker tells an order's event now: stored, ack not awaited
            t0 = user_cpu()
            for i in range(n):
                await bus.publish(subject, event(i))
                if i % 8 == 7:
                    await asyncio.sleep(0)  # the flusher writes between a busy loop's tasks, not once per round
            await bus.nc.flush()
            return (user_cpu() - t0) / n

        async def later() -> float:  # how the execution worker stores an outcome now: its ack checked when it comes
            t0 = user_cpu()
            for i in range(n):
                await store_later.store(bus, subject, event(i), msg_id=f"later-{rounds_run[0]}-{i}")
                if i % 8 == 7:
                    await asyncio.sleep(0)
            while store_later._answers(bus).waiting:  # every ack heard and checked
                await asyncio.sleep(0.001)
            rounds_run[0] += 1
            return (user_cpu() - t0) / n

        rounds_run = [0]
        for name, mine, base_of, baseline in (
                ("JetStream publish", ours, theirs, "nats-py's js.publish"),
                ("rate-budget compare-and-set", ours_cas, theirs_cas, "nats-py's kv.update"),
                ("order event told, the stream's ack not awaited", told, ours, "an acked publish (Bus.js_publish)"),
                ("outcome stored, its ack checked when it comes (store_later)", later, ours,
                 "an acked publish (Bus.js_publish)")):
            await mine()
            await base_of()
            a, b = [], []
            for _ in range(rounds):
                a.append(await mine())
                b.append(await base_of())
            us, base = statistics.median(a) * 1e6, statistics.median(b) * 1e6
            print(f"figure: kta's user CPU per {name} {us:.1f} us (median of {rounds} rounds of {n}: "
                  f"{', '.join(f'{x * 1e6:.0f}' for x in a)}); {baseline} {base:.1f} us "
                  f"({', '.join(f'{x * 1e6:.0f}' for x in b)}): {base / us:.2f}x less CPU; {machine_load()}", flush=True)
        await bus.close()
    finally:
        stack.close()


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(main(int(args[0]) if args else 2000, int(args[1]) if len(args) > 1 else 5))
