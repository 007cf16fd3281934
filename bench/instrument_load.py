"""How long an instrument-list load holds the event loop: the longest gap of a 1 ms heartbeat task while kta loads
the list (``KiteClient.instruments`` + ``InstrumentCache.ensure``: parsed and indexed in threads), against the same
work done on the loop (the fair baseline: what kta did before), and the strategy worker's own cache with the listener
that hands the list to its strategies. A worker's partition leases are renewed every 2 s
with a 6 s TTL, so a stall of seconds loses them. The list is kite_sim's (~2,300 rows), repeated ``times`` with
fresh tokens towards Kite's ~90,000 rows.
Usage: python bench/instrument_load.py [times] [runs]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kite_sim.main import make_sim  # noqa: E402
from shared.config import load as settings_for  # noqa: E402
from shared.kite.client import KiteClient, parse_instruments  # noqa: E402
from shared.kite.instruments import InstrumentCache  # noqa: E402
from strategy_worker.engine import StrategyEngine  # noqa: E402


def instrument_csv(times: int) -> str:
    head, *rows = make_sim(7, 1.0, False, "http://127.0.0.1:9/cb").market.universe.csv(None).strip("\n").split("\n")
    out = [head]
    for k in range(times):
        for row in rows:
            token, rest = row.split(",", 1)
            out.append(f"{int(token) + k * 10_000_000},{rest}")
    return "\n".join(out) + "\n"


async def stall(load) -> float:
    """The longest heartbeat gap (ms) while ``load()`` runs."""
    worst, done = 0.0, False

    async def beat():
        nonlocal worst
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            worst, last = max(worst, now - last), now

    task = asyncio.create_task(beat())
    await asyncio.sleep(0.01)
    await load()
    done = True
    await task
    return worst * 1e3


async def main(times: int, runs: int) -> None:
    text = instrument_csv(times)
    client = KiteClient("bench", "bench", root="http://127.0.0.1:9")

    async def served(*_a, **_kw) -> str:  # the list as the broker's HTTP answer hands it over (no socket: not measured)
        return text

    client._request = served

    async def kta() -> None:
        await InstrumentCache().ensure(client.instruments)

    async def strategy_worker() -> None:  # its cache, with the listener that hands the list to the strategies
        engine = StrategyEngine(None, settings_for(environ={}, data_dir=tempfile.mkdtemp()))
        await engine.clients.instruments.ensure(client.instruments)

    async def on_the_loop() -> None:
        InstrumentCache().load(parse_instruments(text))

    ours, base, worker = [], [], []
    for _ in range(runs):  # alternating
        ours.append(await stall(kta))
        base.append(await stall(on_the_loop))
        worker.append(await stall(strategy_worker))
    with open("/proc/loadavg") as f:
        load = " / ".join(f.read().split()[:3])
    print(f"{text.count(chr(10)) - 1:,} instruments: longest event-loop stall while loading, median of {runs}: kta "
          f"{statistics.median(ours):.1f} ms (max {max(ours):.1f}), on the loop {statistics.median(base):.1f} ms (max "
          f"{max(base):.1f}): {statistics.median(base) / statistics.median(ours):.1f}x shorter; the strategy worker's cache "
          f"with its listener {statistics.median(worker):.1f} ms (max {max(worker):.1f}); load {load}")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1, int(sys.argv[2]) if len(sys.argv) > 2 else 5))
