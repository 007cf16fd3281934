"""One nats-server serves a whole test session (per xdist worker), and what one test leaves there would come
back in the next test's workers: per-user state a worker restores when it starts (NATS KV), partition leases
and memberships of the workers it stopped (a new worker would wait a lease out, up to ``LEASE_SECONDS``, or
hold fewer partitions while a stale membership lasts — a user's commands unanswered meanwhile), and the
messages of the work streams nobody consumed (a signal for a worker the test stopped first, an order update,
an outcome) — the next test's worker binds the same durable consumer and resumes at its ack floor, so it
would act on them. ``Janitor`` purges them between tests over a connection of its own, on a thread and event
loop of its own (so it never touches the tests' loops)."""

from __future__ import annotations

import asyncio
import contextlib
import threading

import nats

from shared import subjects
from shared.bus import Bus
from shared.natsperms import KV_LEASES, KV_TICKER

# a ticker worker subscribes at start every user listed in KV_TICKER; a partitioned worker claims what KV_LEASES
# shows free
RESTORED_AT_START = (KV_TICKER, KV_LEASES)
WORK_STREAMS = tuple(subjects.STREAMS)  # KTA_SIGNALS, KTA_OUTCOMES, KTA_BROKER, ... (not the KV buckets' streams)


class Janitor:
    def __init__(self, url: str, creds: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="nats-janitor", daemon=True)
        self.thread.start()
        self.bus: Bus = self._run(Bus.connect(url, "test-janitor", creds=creds))

    def _run(self, coro, timeout: float = 15.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def empty(self, buckets: tuple[str, ...] = RESTORED_AT_START, streams: tuple[str, ...] = WORK_STREAMS) -> None:
        self._run(self._empty(buckets, streams))

    async def _empty(self, buckets: tuple[str, ...], streams: tuple[str, ...]) -> None:
        # a purge moves every consumer of a stream past what it removed; a bucket is the stream KV_<bucket>
        # (never created here: a worker creates its bucket with its settings, e.g. the leases' TTL)
        for name in (*streams, *(f"KV_{bucket}" for bucket in buckets)):
            with contextlib.suppress(nats.js.errors.NotFoundError):  # no test created it yet
                await self.bus.js.purge_stream(name)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._run(self.bus.close(), 10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
