"""CPU of kta's own process per Kite call — an order placed and its trades read, the two calls every order of
the tick → order path makes — against kite_sim in its own process (its rate limiter off).

The figure is this process's CPU (user + system) per call, so the sim's work is not counted: what the execution
worker spends per call (request building, transport, parsing, the retry policy). Baseline, in the same run: the
official client (``kiteconnect.KiteConnect``, requests) making the same calls. The CPU is measured in rounds,
alternating kta and the baseline, and the median round is printed (the machine is shared).
Usage: python bench/kite_calls.py [calls per round] [rounds]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kiteconnect import KiteConnect  # noqa: E402

from bench.stack import API_KEY, Stack, login, machine_load  # noqa: E402
from shared.kite.client import KiteClient  # noqa: E402


async def kta_round(client: KiteClient, n: int) -> float:
    t0 = time.process_time()
    for i in range(n):
        order_id = await client.place_order("regular", "NSE", "INFY", "BUY" if i % 2 == 0 else "SELL", 1, "MIS",
                                            "MARKET", market_protection=-1, tag=f"b{i:06d}")
        await client.order_trades(order_id)
    return (time.process_time() - t0) / (2 * n)


def official_round(kite: KiteConnect, n: int) -> float:
    t0 = time.process_time()
    for i in range(n):
        order_id = kite.place_order("regular", "NSE", "INFY", "BUY" if i % 2 == 0 else "SELL", 1, "MIS", "MARKET",
                                    market_protection=-1, tag=f"o{i:06d}")
        kite.order_trades(order_id)
    return (time.process_time() - t0) / (2 * n)


async def main(n: int, rounds: int) -> None:
    stack = Stack("kta-bench-calls-")
    try:
        root = stack.start_sim()
        token = login(root)
        client = KiteClient(API_KEY, token, root=root)
        kite = KiteConnect(API_KEY, access_token=token, root=root)
        await kta_round(client, 20)  # warm-up: connections, imports
        official_round(kite, 20)
        ours, theirs = [], []
        for _ in range(rounds):
            ours.append(await kta_round(client, n))
            theirs.append(official_round(kite, n))
        await client.aclose()
        us, base = statistics.median(ours) * 1e6, statistics.median(theirs) * 1e6
        print(f"figure: kta's CPU per Kite call {us:.0f} us (median of {rounds} rounds of {2 * n} calls: "
              f"{', '.join(f'{x * 1e6:.0f}' for x in ours)}); the official client {base:.0f} us "
              f"({', '.join(f'{x * 1e6:.0f}' for x in theirs)}): {base / us:.2f}x less CPU per call; "
              f"{machine_load()}", flush=True)
    finally:
        stack.close()


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(main(int(args[0]) if args else 300, int(args[1]) if len(args) > 1 else 5))
