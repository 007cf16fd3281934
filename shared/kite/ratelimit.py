"""Client-side rate limits with Kite's published numbers, so kta never causes a 429 by itself.

Kite counts requests per api_key (quote 1/s, historical 3/s, orders 10/s + 400/min + 5,000/day,
everything else 10/s combined) in calendar windows of its own clock. Counting here in *sliding*
windows, a little longer than Kite's, keeps every calendar window of the broker under the limit
whatever the clock skew between the two. ``acquire`` waits for a free slot, except for the daily
order cap (a calendar day in IST, like Kite's), which is refused outright.

Clients of the same api_key in one process share one limiter (``for_api_key``)."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict, deque

LIMITS: dict[str, list[tuple[int, int]]] = {
    "quote": [(1, 1)],
    "historical": [(1, 3)],
    "orders": [(1, 10), (60, 400), (86400, 5000)],
    "other": [(1, 10)],
}
DAY = 86400
IST_OFFSET = 19800  # seconds east of UTC


class DailyLimitReached(RuntimeError):
    pass


class RateLimiter:
    def __init__(self, limits: dict[str, list[tuple[int, int]]] | None = None, clock=time.time,
                 margin: float = 0.05) -> None:
        self.limits = limits or LIMITS
        self._clock = clock
        self.margin = margin  # seconds added to every sliding window: latency jitter and clock skew
        self._sent: dict[tuple[str, int], deque[float]] = defaultdict(deque)
        self._days: dict[tuple[str, int], int] = defaultdict(int)  # (class, IST day number) -> count
        self.waits = 0  # how often a caller had to wait (observable in tests and metrics)

    async def acquire(self, cls: str) -> None:
        # No await between the check and the booking, so no lock (and no tie to one event loop).
        while True:
            now = self._clock()
            day = int((now + IST_OFFSET) // DAY)
            wait = 0.0
            for window, limit in self.limits[cls]:
                if window >= DAY:
                    if self._days[(cls, day)] >= limit:
                        raise DailyLimitReached(f"Kite's daily limit of {limit} {cls} requests is reached")
                    continue
                sent = self._sent[(cls, window)]
                span = window + self.margin
                while sent and sent[0] <= now - span:
                    sent.popleft()
                if len(sent) >= limit:
                    wait = max(wait, sent[0] + span - now)
            if wait <= 0:
                for window, _ in self.limits[cls]:
                    if window >= DAY:
                        self._days[(cls, day)] += 1
                    else:
                        self._sent[(cls, window)].append(now)
                return
            self.waits += 1
            await asyncio.sleep(wait)


_shared: dict[str, RateLimiter] = {}


def for_api_key(api_key: str) -> RateLimiter:
    """Kite's limits are per api_key: every client of that key in this process draws on one budget."""
    limiter = _shared.get(api_key)
    if limiter is None:
        limiter = _shared[api_key] = RateLimiter()
    return limiter
