"""A worker's view of its service's keys in the leases bucket, kept current by a KV watch instead of polling.

Every copy's lease renewals and membership heartbeats arrive as updates, a clean release as a delete marker. A
key the bucket's TTL ages out (a dead worker's) sends nothing: nats-server's max-age removes it without a marker
(this bucket has no subject delete markers; checked on nats-server 2.15), so the view ages keys itself: one not
written for the TTL is taken for gone. The view is a hint only — a claim is a create, which fails while the key
still exists (the server removes it 0.05-0.26 s after its TTL, measured), and is tried again a moment later.

It is seeded from the stream's subject index (``kv_keys.live_entries``) after the watch has started, so no write
falls between the two; each key keeps the latest revision either told. Its owner checks that its own writes come
back (``heard``) and watches afresh when they do not (a reconnect, a lost consumer)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import datetime

from nats.js.kv import KV_DEL, KV_PURGE

from shared.kv_keys import live_entries


class LeaseView:
    def __init__(self, bus, kv, under: str, ttl: float, on_free: Callable[[str], None]) -> None:
        self.bus, self.kv, self.under, self.ttl, self.on_free = bus, kv, under, ttl, on_free
        # key -> (value, or None once deleted; revision; when written, monotonic)
        self._keys: dict[str, tuple[bytes | None, int, float]] = {}
        self._watcher = None
        self._task: asyncio.Task | None = None

    async def open(self) -> "LeaseView":
        """(Re)start the watch and seed the view afresh."""
        await self.close()
        self._keys = {}
        try:
            self._watcher = await self.kv.watch(f"{self.under}.>")
            self._task = self.bus.spawn(self._follow(self._watcher), name=f"lease-view:{self.under}")
            for key, entry in (await live_entries(self.kv, self.under)).items():
                self._apply(key, entry.value, entry.revision, None)
        except BaseException:
            await self.close()
            raise
        return self

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None
        if self._watcher is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._watcher.stop(), 1.0)
            self._watcher = None

    async def _follow(self, watcher) -> None:
        async for entry in watcher:
            if entry is None:  # the end of the initial values
                continue
            gone = entry.operation in (KV_DEL, KV_PURGE)
            self._apply(entry.key, None if gone else entry.value, entry.revision, entry.created)
            if gone:
                self.on_free(entry.key)

    def _apply(self, key: str, value: bytes | None, revision: int, created: datetime | None) -> None:
        now = time.monotonic()
        # its age by the server's clock (a key delivered by a fresh watch may be seconds old), at most the TTL
        age = min(max(time.time() - created.timestamp(), 0.0), self.ttl) if created is not None else 0.0
        old = self._keys.get(key)
        if old is not None and old[1] > revision:
            return
        if old is None or old[1] < revision:
            self._keys[key] = (value, revision, now - age)
        else:  # told again (the seed and the watch; a release announced first): the earliest, the value kept
            self._keys[key] = (old[0], revision, min(old[2], now - age))

    def live(self) -> dict[str, tuple[bytes, int]]:
        """Key -> (value, revision) of the keys that hold a value written within the TTL."""
        now = time.monotonic()
        return {k: (v, rev) for k, (v, rev, at) in self._keys.items() if v is not None and now - at < self.ttl}

    def heard(self, key: str, revision: int) -> bool:
        entry = self._keys.get(key)
        return entry is not None and entry[1] >= revision

    def released(self, key: str, holder: bytes) -> None:
        """``holder`` said it deleted ``key``: its announcement may overtake the watch's delete marker."""
        value, revision, at = self._keys.get(key, (None, 0, 0.0))
        if value == holder:
            self._keys[key] = (None, revision, at)

    def postpone(self, key: str, delay: float) -> None:
        """A claim of ``key`` failed: it is still there (not aged out yet, or written unheard): held ``delay`` more."""
        value, revision, _ = self._keys.get(key, (b"", 0, 0.0))
        self._keys[key] = (value or b"", revision, time.monotonic() - self.ttl + delay)

    def next_expiry(self, skip: set[str]) -> float:
        """Seconds until the first key not in ``skip`` ages out (inf: none)."""
        now = time.monotonic()
        ends = [at + self.ttl - now for k, (v, _, at) in self._keys.items() if v is not None and k not in skip]
        return min((e for e in ends if e > 0), default=float("inf"))  # (aged out already: no wake for ever)
