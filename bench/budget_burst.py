"""CPU and NATS requests of the rate budget per Kite read when a process's reads of one api_key come in bursts — as
the execution worker's do: an account's orders fill together and each fill's trades are read (~3 reads of a key
within 0.3 s, issue #18) — through nats-server with kta's authentication.

Each burst is ``size`` claims of the "other" class 0.1 s apart, the bursts 2 s apart (a bar close every 2 s, as
``bench/tick_to_order.py`` runs them); the clock is the budget's own (stepped, not slept), so a round is the claims'
CPU alone. The figure is this process's user CPU and its NATS requests per claim with the lease (``SharedBudget``
as kta runs it); the baseline, in the same run, is the same budget taking no lease (``spares = 0``: one
compare-and-set a claim, as before the lease). Rounds alternate; the median round is printed (the machine is shared).
Usage: python bench/budget_burst.py [bursts per round] [rounds] [reads a burst]
"""

from __future__ import annotations

import asyncio
import resource
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.stack import Stack, machine_load  # noqa: E402
from shared.kite.budget import SharedBudget  # noqa: E402


def user_cpu() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_utime


async def main(bursts: int, rounds: int, size: int) -> None:
    stack = Stack("kta-bench-budget-")
    try:
        bus = await stack.bus("bench-budget")
        clock = [1_800_000_000.0]

        def budget(name: str, spares: int) -> SharedBudget:
            b = SharedBudget(bus, f"bench-budget-{name}", clock=lambda: clock[0])
            b.spares = spares
            return b

        leased, plain = budget("leased", 2), budget("plain", 0)

        async def run(b: SharedBudget) -> tuple[float, float]:
            windows = b.limits["other"]
            sent, t0 = bus.nc.stats["out_msgs"], user_cpu()
            for _ in range(bursts):
                clock[0] += 2.0
                for _ in range(size):
                    await b.acquire("other")
                    clock[0] += 0.1
            assert windows and b.fallbacks == 0
            n = bursts * size
            return (user_cpu() - t0) / n, (bus.nc.stats["out_msgs"] - sent) / n

        await run(leased)
        await run(plain)
        ours, theirs = [], []
        for _ in range(rounds):
            ours.append(await run(leased))
            theirs.append(await run(plain))
        us, base = statistics.median(c for c, _ in ours) * 1e6, statistics.median(c for c, _ in theirs) * 1e6
        requests, base_requests = statistics.median(r for _, r in ours), statistics.median(r for _, r in theirs)
        print(f"figure: a Kite read's rate-budget claim in bursts of {size}: {us:.1f} us user CPU, {requests:.2f} NATS "
              f"requests (median of {rounds} rounds of {bursts} bursts: {', '.join(f'{c * 1e6:.0f}' for c, _ in ours)} us); "
              f"one compare-and-set a claim (no lease) {base:.1f} us, {base_requests:.2f} requests "
              f"({', '.join(f'{c * 1e6:.0f}' for c, _ in theirs)} us): {base / us:.2f}x less CPU; {machine_load()}",
              flush=True)
        await bus.close()
    finally:
        stack.close()


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(main(int(args[0]) if args else 300, int(args[1]) if len(args) > 1 else 5,
                     int(args[2]) if len(args) > 2 else 3))
