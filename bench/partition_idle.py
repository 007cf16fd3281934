"""What partition leases cost an idle execution worker in NATS messages: two real ExecutionWorkers (in one process,
each with its own connection) on a real nats-server split the 8 partitions; once settled, each one's messages sent
and received over ``seconds`` of idleness are counted (its feeds' pull requests included). The baseline in the same
run: the lease poll the workers used before (the stream's subject index and a read of every key, each third of a
lease: ``kv_keys.live_entries``), run on a connection of its own for as long, after. The process's CPU over the
window is printed too. Run this file with
``PYTHONPATH`` at an older checkout to count that code's whole worker.
Usage: python bench/partition_idle.py [seconds]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.partition_handover import Copy, wait_for  # noqa: E402
from shared import natsd, partition  # noqa: E402
from shared.bus import Bus  # noqa: E402
from shared.config import load  # noqa: E402
from shared.kv_keys import live_entries  # noqa: E402


def counts(bus) -> tuple[int, int]:
    return bus.nc.stats["out_msgs"], bus.nc.stats["in_msgs"]


async def main(seconds: float) -> None:
    port = natsd.free_port()
    proc = natsd.start(port, tempfile.mkdtemp())
    url = f"nats://127.0.0.1:{port}"
    settings = load(environ={}, nats_url=url, data_dir=str(Path(tempfile.mkdtemp())), log_level="WARNING",
                    mis_square_off_at="", execution_workers=2)
    poller = await Bus.connect(url, "bench-poll")
    await poller.ensure_streams()
    copies = [Copy(settings), Copy(settings)]
    try:
        await wait_for(lambda: all(c.worker is not None for c in copies), "the workers")
        parts = [c.worker.parts for c in copies]
        await wait_for(lambda: all(time.monotonic() - p._started > p.grace and len(p.owned) == 4 for p in parts),
                       "an even split, past the start-up grace")
        await asyncio.sleep(1.0)  # settled
        kv = await poller.kv(partition.KV_LEASES, ttl=partition.LEASE_SECONDS)
        before, cpu0, t0 = [counts(c.worker.bus) for c in copies], time.process_time(), time.monotonic()
        await asyncio.sleep(seconds)  # the workers alone: their messages and the process's CPU
        took, cpu = time.monotonic() - t0, time.process_time() - cpu0
        after = [counts(c.worker.bus) for c in copies]
        polled, p0 = counts(poller), time.monotonic()
        while (left := seconds - (time.monotonic() - p0)) > 0:  # then the old poll, on the side, as long
            await live_entries(kv, "execution")
            await asyncio.sleep(min(left, partition.LEASE_SECONDS / 3))
        before.append(polled)
        after.append(counts(poller))
        poll_took = time.monotonic() - p0
    finally:
        for c in copies:
            await c.close()
        await poller.close()
        proc.terminate()
    rates = [((o1 - o0) / t, (i1 - i0) / t) for (o0, i0), (o1, i1), t in zip(before, after, (took, took, poll_took))]
    poll = sum(rates[-1])
    for n, (out, inn) in enumerate(rates[:-1]):
        print(f"idle execution worker {n} (4 partitions): {out + inn:5.1f} NATS msgs/s (sent {out:.1f}, received "
              f"{inn:.1f}); the lease poll alone: {poll:.1f} msgs/s ({(out + inn) / poll:.2f}x of it)")
    with open("/proc/loadavg") as f:
        load_avg = " / ".join(f.read().split()[:3])
    print(f"the process's CPU (both workers): {cpu / took * 1e3:.1f} ms a second; over {took:.0f} s; load {load_avg}")


if __name__ == "__main__":
    asyncio.run(main(float(sys.argv[1]) if len(sys.argv) > 1 else 20.0))
