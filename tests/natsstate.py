"""One nats-server serves a whole test session (per xdist worker), and two kinds of what one test leaves
there would come back in the next test's workers: per-user state a worker restores when it starts (NATS KV),
and the messages of the work streams nobody consumed (a signal for a worker the test stopped first, an order
update, an outcome) — the next test's worker binds the same durable consumer and resumes at its ack floor,
so it would act on them. ``Janitor`` empties both between tests over a connection of its own, on a thread
and event loop of its own (so it never touches the tests' loops)."""

from __future__ import annotations

import asyncio
import contextlib
import threading

import nats

from shared import subjects
from shared.bus import Bus
from shared.natsperms import KV_TICKER

RESTORED_AT_START = (KV_TICKER,)  # a ticker worker subscribes at start every user listed there
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
        for name in streams:  # a purge moves every consumer of the stream past what it removed
            with contextlib.suppress(nats.js.errors.NotFoundError):  # no test created it yet
                await self.bus.js.purge_stream(name)
        for name in buckets:
            kv = await self.bus.kv(name)
            try:
                keys = await kv.keys()
            except nats.js.errors.NoKeysError:
                continue
            for key in keys:
                with contextlib.suppress(nats.js.errors.KeyNotFoundError):
                    await kv.purge(key)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._run(self.bus.close(), 10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
