"""Ticks for every dashboard of this gateway from ONE NATS subscription per instrument token.

Each user's feed says which tokens it shows (``want``); a token has one subscription for the whole
gateway while any feed wants it, whatever the number of users. Ticks are coalesced per token (only
the latest is kept, O(1) per tick) and flushed every ``TICK_FLUSH_SECONDS``: each token's update
becomes one payload and one render cache shared by every feed showing it, so rendering it (HTML for
the dashboard, JSON for API clients) happens once per format, not once per client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from shared import messages as m
from shared import subjects

if TYPE_CHECKING:
    from gateway.streams import UserFeed

log = logging.getLogger("kta.gateway.streams")
TICK_FLUSH_SECONDS = 0.25
_TICK_FIELDS = tuple(f for f in m.Tick.__struct_fields__ if f != "depth")


class TickFanout:
    def __init__(self, bus, flush_seconds: float = TICK_FLUSH_SECONDS) -> None:
        self.bus = bus
        self.flush_seconds = flush_seconds
        self.readers: dict[int, set[UserFeed]] = {}  # token -> the feeds showing it
        self._subs: dict[int, Any] = {}
        self._pending: dict[int, m.Tick] = {}
        self._flusher: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        self.ticks_seen = 0

    @property
    def subscriptions(self) -> int:
        return len(self._subs)

    async def want(self, feed: "UserFeed", tokens) -> None:
        """``feed`` shows exactly ``tokens`` from now on."""
        async with self._lock:
            new = set(tokens)
            old, feed.tokens = feed.tokens, new
            for token in old - new:
                readers = self.readers.get(token)
                if readers is not None:
                    readers.discard(feed)
                    if not readers:
                        del self.readers[token]
                        self._pending.pop(token, None)
                        with contextlib.suppress(Exception):
                            await self._subs.pop(token).unsubscribe()
            for token in new - old:
                self.readers.setdefault(token, set()).add(feed)
                if token not in self._subs:
                    self._subs[token] = await self.bus.subscribe(subjects.ticks(token), m.Tick, self._on_tick)
            if self._subs and self._flusher is None:
                self._flusher = asyncio.create_task(self._flush_loop(), name="tick-fanout")

    async def _on_tick(self, tick: m.Tick, msg) -> None:
        self._pending[tick.instrument_token] = tick  # only the latest per token is kept
        self.ticks_seen += 1

    def flush(self) -> int:
        """Hand each token's latest tick to the feeds showing it; the number of updates."""
        if not self._pending:
            return 0
        pending, self._pending = self._pending, {}
        for token, tick in pending.items():
            payload = {f: getattr(tick, f) for f in _TICK_FIELDS}
            cache: dict = {}  # one rendering per format for every feed and client
            for feed in self.readers.get(token, ()):
                feed.emit_tick(token, payload, cache)
        return len(pending)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_seconds)
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - one bad tick must not stop the dashboards' ticks
                log.exception("flushing ticks to the streams failed")

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
        for sub in self._subs.values():
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self._subs.clear()
        self.readers.clear()
