"""Client-side rate limits with Kite's published numbers, so kta never causes a 429 by itself.

Kite counts requests per api_key (quote 1/s, historical 3/s, orders 10/s + 400/min + 5,000/day,
everything else 10/s combined) in calendar windows of its own clock. Counting here in *sliding*
windows, a little longer than Kite's, keeps every calendar window of the broker under the limit
whatever the clock skew between the two. ``acquire`` waits for a free slot, except for the daily
order cap (a calendar day in IST, like Kite's), which is refused outright.

Each KiteClient has its own limiter by default; clients that must share an api_key's budget pass
the same one (``for_api_key``). A 429 that still arrives is retried by the client (reads) or
resolved by tag (orders)."""

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
        """Reserve the earliest slot that keeps every window under its limit, then wait for it.
        Slots are handed out in call order (FIFO): a busy poller cannot starve other callers."""
        now = self._clock()
        at = now
        for window, limit in self.limits[cls]:
            if window >= DAY:
                continue
            sent = self._sent[(cls, window)]
            span = window + self.margin
            while sent and sent[0] <= now - span:
                sent.popleft()
            if sent:
                at = max(at, sent[-1])  # never ahead of an earlier caller
            if len(sent) >= limit:
                at = max(at, sent[-limit] + span)
        day = int((at + IST_OFFSET) // DAY)
        for window, limit in self.limits[cls]:
            if window >= DAY and self._days[(cls, day)] >= limit:
                raise DailyLimitReached(f"Kite's daily limit of {limit} {cls} requests is reached")
        for window, _ in self.limits[cls]:
            if window >= DAY:
                self._days[(cls, day)] += 1
            else:
                self._sent[(cls, window)].append(at)
        if at > now:
            self.waits += 1
            await asyncio.sleep(at - now)


_shared: dict[str, RateLimiter] = {}


def for_api_key(api_key: str) -> RateLimiter:
    """Kite's limits are per api_key: every client of that key in this process draws on one budget."""
    limiter = _shared.get(api_key)
    if limiter is None:
        limiter = _shared[api_key] = RateLimiter()
    return limiter
