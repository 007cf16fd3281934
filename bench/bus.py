"""Ticks through the real nats-server: publisher here, subscriber in another process.

Prints sustained messages/s (burst) and p50/p99 publish→receive latency (paced), and the ratio
against the original design's 100 ticks/s. Target: >= 50,000 ticks/s on the 2-core machine.
Usage: python bench/bus.py [ticks]
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared import natsd, subjects  # noqa: E402
from shared.bus import Bus  # noqa: E402
from shared.messages import OHLC, Tick  # noqa: E402

BASELINE = 100.0  # ticks/s, the original design's figure
SUBJECT = subjects.ticks(408065)


def subscriber(url: str, expected: int, ready, result) -> None:
    async def run() -> None:
        bus = await Bus.connect(url, "bench-sub")
        latencies: list[int] = []
        done = asyncio.Event()
        first = [0]

        async def handler(tick: Tick, msg) -> None:
            now = time.time_ns()
            if not first[0]:
                first[0] = now
            latencies.append(now - tick.received_at)
            if len(latencies) >= expected:
                done.set()

        await bus.subscribe(SUBJECT, Tick, handler)
        await bus.nc.flush()
        ready.set()
        try:
            await asyncio.wait_for(done.wait(), 120)
        except asyncio.TimeoutError:
            pass
        result.put((len(latencies), first[0], time.time_ns(), latencies))
        await bus.close()

    asyncio.run(run())


async def publish(url: str, n: int, pace: float | None) -> None:
    bus = await Bus.connect(url, "bench-pub")
    tick = Tick(408065, "quote", True, 1573.15, 1, 1570.33, 1175986, 256511, 360503,
                OHLC(1569.15, 1575.0, 1561.05, 1567.8))
    start = time.perf_counter()
    for i in range(n):
        tick.received_at = time.time_ns()
        tick.volume_traded = i
        await bus.publish(SUBJECT, tick)
        if pace and i % 100 == 0:
            lag = start + i / pace - time.perf_counter()
            if lag > 0:
                await asyncio.sleep(lag)
    await bus.nc.flush()
    await bus.close()


def run(url: str, n: int, pace: float | None):
    ctx = mp.get_context("spawn")
    ready, result = ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=subscriber, args=(url, n, ready, result))
    proc.start()
    ready.wait(30)
    asyncio.run(publish(url, n, pace))
    got, first, last, lat = result.get(timeout=150)
    proc.join(10)
    lat.sort()
    return got, (last - first) / 1e9, lat


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300_000
    port = natsd.free_port()
    with tempfile.TemporaryDirectory() as store:
        server = natsd.start(port, store)
        url = f"nats://127.0.0.1:{port}"
        try:
            got, secs, _ = run(url, n, None)
            rate = got / secs if secs else 0.0
            print(f"burst : {got:,}/{n:,} ticks received in {secs:.2f}s = {rate:,.0f} ticks/s "
                  f"({rate / BASELINE:,.0f}x the original design's {BASELINE:.0f}/s; target >= 50,000/s)")
            paced_n, pace = 40_000, 10_000.0
            got, secs, lat = run(url, paced_n, pace)
            p50 = statistics.median(lat) / 1e3
            p99 = lat[int(len(lat) * 0.99) - 1] / 1e3
            print(f"paced : {got:,}/{paced_n:,} ticks at {pace:,.0f}/s, latency p50 {p50:,.0f} µs, p99 {p99:,.0f} µs")
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main()
