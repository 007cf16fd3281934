"""Client-side rate limits with Kite's published numbers, so kta never causes a 429 by itself.

Kite counts requests per api_key in calendar windows (quote 1/s, historical 3/s, orders 10/s +
400/min + 5,000/day, everything else 10/s combined). ``acquire`` waits for the next window rather
than failing, except for the daily order cap which is refused outright."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

LIMITS: dict[str, list[tuple[int, int]]] = {
    "quote": [(1, 1)],
    "historical": [(1, 3)],
    "orders": [(1, 10), (60, 400), (86400, 5000)],
    "other": [(1, 10)],
}


class DailyLimitReached(RuntimeError):
    pass


class RateLimiter:
    def __init__(self, limits: dict[str, list[tuple[int, int]]] | None = None, clock=time.time) -> None:
        self.limits = limits or LIMITS
        self._clock = clock
        self._counts: dict[tuple[str, int, int], int] = defaultdict(int)
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.waits = 0  # how often a caller had to wait (observable in tests and metrics)

    async def acquire(self, cls: str) -> None:
        async with self._locks[cls]:
            while True:
                now = self._clock()
                keys = [(cls, w, int(now // w)) for w, _ in self.limits[cls]]
                full = [(w, k) for (w, limit), k in zip(self.limits[cls], keys) if self._counts[k] >= limit]
                if not full:
                    for k in keys:
                        self._counts[k] += 1
                    return
                window = max(w for w, _ in full)
                if window >= 86400:
                    raise DailyLimitReached(f"Kite's daily limit for {cls} requests is reached")
                self.waits += 1
                await asyncio.sleep((int(now // window) + 1) * window - now + 0.001)
