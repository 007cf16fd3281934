"""Per-user state a worker restores when it starts lives in NATS KV, and one nats-server serves a whole
test session (per xdist worker): what one test leaves there must not come back in the next test's
workers. ``Janitor`` empties such buckets between tests over a connection of its own, on a thread and
event loop of its own (so it never touches the tests' loops)."""

from __future__ import annotations

import asyncio
import contextlib
import threading

import nats

from shared.bus import Bus
from shared.natsperms import KV_TICKER

RESTORED_AT_START = (KV_TICKER,)  # a ticker worker subscribes at start every user listed there


class Janitor:
    def __init__(self, url: str, creds: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="nats-janitor", daemon=True)
        self.thread.start()
        self.bus: Bus = self._run(Bus.connect(url, "test-janitor", creds=creds))

    def _run(self, coro, timeout: float = 15.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def empty(self, buckets: tuple[str, ...] = RESTORED_AT_START) -> None:
        self._run(self._empty(buckets))

    async def _empty(self, buckets: tuple[str, ...]) -> None:
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
