"""What a trader's reads see while execution workers hand partitions over: two real ExecutionWorkers (in one
process, each with its own NATS connection) on a real nats-server, one reader a partition asking
``GetJournalSummary`` every 10 ms with the gateway's 5 s patience. The second copy joins (the first gives it half)
and is stopped cleanly (it gives them back), ``runs`` times. Prints, per kind of hand-over, the longest wait of a
read asked during it and the reads left unanswered (the gateway's 503), against the same on the code before
(run this file with ``PYTHONPATH`` at the older checkout: the fair baseline is the same bench on it).
Usage: python bench/partition_handover.py [runs]
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from execution_worker.main import ExecutionWorker  # noqa: E402
from shared import messages as m  # noqa: E402
from shared import natsd, partition, service, subjects  # noqa: E402
from shared.bus import Bus, RequestTimeout  # noqa: E402
from shared.config import load  # noqa: E402

PATIENCE = 5.0  # the gateway's (gateway/trading.py)
PACE = 0.01  # between a reader's reads: the windows are measured to this


def one_user_a_partition() -> list[str]:
    users: dict[int, str] = {}
    for i in range(1000):
        users.setdefault(partition.of(f"HB{i:04d}"), f"HB{i:04d}")
    return [users[p] for p in range(partition.PARTITIONS)]


async def wait_for(predicate, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.01)


class Copy:
    """One execution worker run by ``service.amain`` until ``stop`` (a clean stop, as on SIGTERM)."""

    def __init__(self, settings) -> None:
        self.stop, self.worker = asyncio.Event(), None

        async def start(bus, s):
            self.worker = await ExecutionWorker(bus, s).start()
            return self.worker

        self.task = asyncio.create_task(service.amain("execution", settings, start, self.stop))

    async def close(self) -> None:
        self.stop.set()
        await self.task


async def main(runs: int) -> None:
    port = natsd.free_port()
    proc = natsd.start(port, tempfile.mkdtemp())
    url = f"nats://127.0.0.1:{port}"
    data = Path(tempfile.mkdtemp())
    settings = load(environ={}, nats_url=url, data_dir=str(data), log_level="WARNING", mis_square_off_at="",
                    execution_workers=2)
    client = await Bus.connect(url, "bench")
    await client.ensure_streams()
    users = one_user_a_partition()
    reads: list[tuple[float, float, bool]] = []  # asked, answered (or given up), answered
    reading = True

    async def reader(user: str) -> None:
        while reading:
            asked = time.monotonic()
            try:
                await client.request(subjects.cmd(user, "journal", "get_journal_summary"), m.GetJournalSummary(),
                                     timeout=PATIENCE)
                reads.append((asked, time.monotonic(), True))
            except RequestTimeout:
                reads.append((asked, time.monotonic(), False))
            await asyncio.sleep(PACE)

    first = Copy(settings)
    await wait_for(lambda: first.worker is not None, "the first worker")
    parts = first.worker.parts
    await wait_for(lambda: time.monotonic() - parts._started > parts.grace and len(parts.owned) == partition.PARTITIONS,
                   "the first worker alone with every partition")
    readers = [asyncio.create_task(reader(u)) for u in users]
    windows: dict[str, list[tuple[float, int, int]]] = {"join": [], "stop": []}

    def window(kind: str, start: float, end: float) -> None:
        asked = [r for r in reads if start <= r[0] <= end]
        worst = max((done - at for at, done, _ in asked), default=0.0)
        windows[kind].append((worst, sum(not ok for *_, ok in asked), len(asked)))

    try:
        for _ in range(runs):
            start = time.monotonic()
            second = Copy(settings)
            await wait_for(lambda: second.worker is not None and len(second.worker.parts.owned) == 4 and
                           len(parts.owned) == 4, "an even split")
            await asyncio.sleep(PATIENCE + 0.5)  # every read asked during the join has its outcome, none outstanding
            joined = time.monotonic()
            await second.close()
            await wait_for(lambda: len(parts.owned) == partition.PARTITIONS, "the survivor with every partition")
            await asyncio.sleep(0.5)
            stopped = time.monotonic()
            await asyncio.sleep(PATIENCE + 0.5)  # every read asked in the windows has its outcome
            window("join", start, joined)
            window("stop", joined, stopped)
    finally:
        reading = False
        await asyncio.gather(*readers)
        await first.close()
        await client.close()
        proc.terminate()
    with open("/proc/loadavg") as f:
        load_avg = " / ".join(f.read().split()[:3])
    for kind, rows in windows.items():
        worst = [w * 1e3 for w, _, _ in rows]
        print(f"{kind:>4}: longest wait of a read asked during the hand-over, median of {runs} {statistics.median(worst):.0f}"
              f" ms (max {max(worst):.0f}); unanswered (gateway 503) {sum(u for _, u, _ in rows)} of "
              f"{sum(n for *_, n in rows)} reads")
    print(f"load {load_avg}")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 5))
