"""How long a crashed worker's users wait: partition takeover time after a copy dies without
releasing, and hand-over time after a clean stop, with kta's real Partitions on a real nats-server.

Two copies split the 8 partitions; one is then (a) stopped cleanly or (b) cut off mid-lease (its
connection closed, no release). Prints the time until the survivor holds every partition, median of
``runs``, and the ratio against the bound the design names: the lease TTL (6 s) plus one renewal tick.
Usage: python bench/partition_takeover.py [runs]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared import natsd, partition  # noqa: E402
from shared.bus import Bus  # noqa: E402

BOUND = partition.LEASE_SECONDS + partition.LEASE_SECONDS / 3


async def one(url: str, run: int, crash: bool) -> float:
    a_bus, b_bus = await Bus.connect(url, "bench-a"), await Bus.connect(url, "bench-b")
    service = f"bench{run}{'c' if crash else 's'}"
    a = await partition.Partitions(a_bus, service, instance="a").start()
    b = await partition.Partitions(b_bus, service, instance="b").start()
    while len(a.owned) != len(b.owned):
        await asyncio.sleep(0.05)
    t0 = time.monotonic()
    if crash:
        b._loop.cancel()
        await b_bus.nc.close()
    else:
        await b.close()
    while len(a.owned) != partition.PARTITIONS:
        await asyncio.sleep(0.01)
    took = time.monotonic() - t0
    await a.close()
    await a_bus.close()
    if not crash:
        await b_bus.close()
    return took


async def main(runs: int) -> None:
    port = natsd.free_port()
    proc = natsd.start(port, tempfile.mkdtemp())
    url = f"nats://127.0.0.1:{port}"
    try:
        for crash in (False, True):
            times = [await one(url, i, crash) for i in range(runs)]
            med = statistics.median(times)
            what = "crashed copy (no release)" if crash else "clean stop (leases released)"
            print(f"{what:<32} median {med:6.2f} s over {runs} runs  ({BOUND / med:5.1f}x inside the "
                  f"{BOUND:.0f} s bound: lease TTL + one tick)")
    finally:
        proc.terminate()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3))
