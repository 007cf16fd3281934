"""Ticks for every dashboard of this gateway from ONE NATS subscription per instrument token.

Each user's feed says which tokens it shows (``want``); a token has one subscription for the whole
gateway while any feed wants it, whatever the number of users. Ticks are coalesced per token (only
the latest is kept, O(1) per tick) and flushed every ``TICK_FLUSH_SECONDS``: each token's update
becomes one row (payload + render cache), and the feeds that show the same instruments share one
batch of those rows with one render cache. So a flush costs O(tokens + feeds), not O(tokens × feeds):
a row is rendered once per format, a batch is joined and framed once per format, and each feed gets
one event, whatever the number of users and clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from shared import messages as m
from shared import subjects

from gateway.stream_events import Event

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
        self.feeds: set[UserFeed] = set()  # the feeds showing any token
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
            feed.tokens_key = frozenset(new)  # feeds showing the same instruments share a flush's batch
            if new:
                self.feeds.add(feed)
            else:
                self.feeds.discard(feed)
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
        """Hand each feed one batch of the latest ticks of the tokens it shows; the number of updates."""
        if not self._pending:
            return 0
        pending, self._pending = self._pending, {}
        rows = [Event(0, "ticks", ("ticks", token), {f: getattr(tick, f) for f in _TICK_FIELDS})
                for token, tick in pending.items()]
        batches: dict[frozenset, tuple[tuple[Event, ...], dict]] = {}
        for feed in self.feeds:
            if not feed.clients:
                continue
            batch = batches.get(feed.tokens_key)
            if batch is None:  # once per distinct set of instruments, not once per feed
                batch = batches[feed.tokens_key] = (
                    tuple(row for row in rows if row.key[1] in feed.tokens_key), {})
            if batch[0]:
                feed.emit_ticks(*batch)
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
        self.feeds.clear()
