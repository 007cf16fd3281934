"""CPU of kta's process per JetStream publish — how the execution worker tells an order's events and outcomes
(``Bus.js_publish``: published, the stream's ack awaited) — through nats-server with kta's authentication.

The figure is this process's CPU (user + system) per publish of an ``OrderEvent`` to its stream; the baseline, in
the same run, is nats-py's own ``js.publish`` of the same bytes. Rounds alternate the two; the median round is
printed (the machine is shared). Usage: python bench/js_publish.py [publishes per round] [rounds]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.stack import Stack, machine_load  # noqa: E402
from shared import messages as m  # noqa: E402
from shared import subjects  # noqa: E402

USER = "BEN01"


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
            t0 = time.process_time()
            for i in range(n):
                await bus.js_publish(subject, event(i))
            return (time.process_time() - t0) / n

        async def theirs() -> float:
            t0 = time.process_time()
            for i in range(n):
                await bus.js.publish(subject, m.encode(event(i)))
            return (time.process_time() - t0) / n

        await ours()
        await theirs()
        a, b = [], []
        for _ in range(rounds):
            a.append(await ours())
            b.append(await theirs())
        await bus.close()
        us, base = statistics.median(a) * 1e6, statistics.median(b) * 1e6
        print(f"figure: kta's CPU per JetStream publish {us:.1f} us (median of {rounds} rounds of {n}: "
              f"{', '.join(f'{x * 1e6:.0f}' for x in a)}); nats-py's js.publish {base:.1f} us "
              f"({', '.join(f'{x * 1e6:.0f}' for x in b)}): {base / us:.2f}x less CPU; {machine_load()}", flush=True)
    finally:
        stack.close()


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(main(int(args[0]) if args else 2000, int(args[1]) if len(args) > 1 else 5))
