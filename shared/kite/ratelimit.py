"""Client-side rate limits with Kite's published numbers, so kta never causes a 429 by itself.

Kite counts requests per api_key (quote 1/s, historical 3/s, orders 10/s + 400/min + 5,000/day,
everything else 10/s combined) in calendar windows of its own clock. Counting here in *sliding*
windows, a little longer than Kite's, keeps every calendar window of the broker under the limit
whatever the clock skew between the two. ``acquire`` waits for a free slot, except for the daily
order cap (a calendar day in IST, like Kite's), which is refused outright.

``next_slot`` is the rule; ``RateLimiter`` keeps its state in this process (one client, or the
clients of one process: ``for_api_key``), ``shared.kite.budget.SharedBudget`` keeps it in NATS KV so
every process of a deployment spends one budget per api_key. A 429 that still arrives is retried by
the client (reads and the orders Kite provably did not take)."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import defaultdict, deque
from collections.abc import Iterable

from shared import ist
from shared.kite import waits

LIMITS: dict[str, list[tuple[int, int]]] = {
    "quote": [(1, 1)],
    "historical": [(1, 3)],
    "orders": [(1, 10), (60, 400), (86400, 5000)],
    "other": [(1, 10)],
}
DAY = 86400
MARGIN = 0.1  # seconds added to every sliding window: latency jitter, clock skew, a late wake-up
LATE_RECLAIMS = 1
log = logging.getLogger("kta.kite.ratelimit")


def endpoint_class(method: str, path: str) -> str:
    """Which of Kite's limits a request counts against."""
    if path.startswith("/quote"):
        return "quote"
    if path.startswith("/instruments/historical"):
        return "historical"
    if path.startswith("/orders/") and method in ("POST", "PUT", "DELETE"):
        return "orders"
    return "other"


class DailyLimitReached(RuntimeError):
    pass


def next_slot(sent: Iterable[float], windows: list[tuple[int, int]], now: float, margin: float = MARGIN, *,
              fifo: bool = True) -> float:
    """The earliest time, not before ``now`` nor (``fifo``) before the last slot handed out (first come, first
    served), at which one more request keeps every sliding window (shorter than a day) under its limit.
    ``sent``: the times of the slots already handed out, oldest first (any order without ``fifo``).
    A slot stamped ``t`` is sent at the latest ``margin`` after ``t``, at any time before it; so one more slot
    at ``at`` shares a window with the stamps after ``at - window - margin`` and with none before — which is
    why the rule holds without ``fifo`` too (SharedBudget: a lease's stamp lies ahead of its first use)."""
    stamps = list(sent) if fifo else sorted(sent)
    at = max([now, *stamps[-1:]]) if fifo else now
    for window, limit in windows:
        if window >= DAY:
            continue
        span = window + margin
        recent = [t for t in stamps if t > now - span]
        if len(recent) >= limit:
            at = max(at, recent[-limit] + span)
    return at


def horizon(windows: list[tuple[int, int]], margin: float = MARGIN) -> float:
    """How long a slot matters (the longest window shorter than a day)."""
    return max((w for w, _ in windows if w < DAY), default=0) + margin


class RateLimiter:
    def __init__(self, limits: dict[str, list[tuple[int, int]]] | None = None, clock=time.time,
                 margin: float = MARGIN) -> None:
        self.limits = limits or LIMITS
        self._clock = clock
        self.margin = margin
        self._sent: dict[str, deque[float]] = defaultdict(deque)
        self._days: dict[tuple[str, int], int] = defaultdict(int)  # (class, IST day number) -> count
        self.waits = 0  # how often a caller had to wait (observable in tests and metrics)
        self.late = 0  # slots given up because the caller woke too late to use them
        self.ahead = math.inf  # how far ahead a slot may be reserved

    async def acquire(self, cls: str) -> None:
        """Reserve the earliest slot that keeps every window under its limit, then wait for it.
        Slots are handed out in call order (FIFO): a busy poller cannot starve other callers. A caller
        woken more than the margin after its slot (a loaded machine) claims one fresh slot: sent that
        late, it could crowd the next window. Once: a machine that late every time would otherwise
        fill the windows with slots nobody used."""
        windows = self.limits.get(cls)
        if windows is None:  # a class this limiter does not count (the order gate's)
            return
        late = 0
        while True:
            at, now, claimed = await self._claim(cls, windows)
            if not claimed:  # too far ahead to reserve yet (see SharedBudget): come back nearer the time
                with waits.waiting(waits.BUDGET):  # Kite's limits: reported beside kta's own time (waits.py)
                    await asyncio.sleep(at - now - self.ahead)
                continue
            if at > now:
                self.waits += 1
                with waits.waiting(waits.BUDGET):
                    await asyncio.sleep(at - now)
            if self._clock() - at <= self.margin:
                return
            if late == LATE_RECLAIMS:
                log.info("rate limiter: a %s slot used late again (an overloaded machine)", cls)
                return
            late += 1
            self.late += 1

    async def _claim(self, cls: str, windows: list[tuple[int, int]]) -> tuple[float, float, bool]:
        """(slot, now, claimed): the slot is recorded as taken (always, in this in-process limiter)."""
        now = self._clock()
        sent = self._sent[cls]
        while sent and sent[0] <= now - horizon(windows, self.margin):
            sent.popleft()
        at = next_slot(sent, windows, now, self.margin)
        day = ist.day_number(at)
        for window, limit in windows:
            if window >= DAY and self._days[(cls, day)] >= limit:
                raise DailyLimitReached(f"Kite's daily limit of {limit} {cls} requests is reached")
        if any(window >= DAY for window, _ in windows):
            self._days[(cls, day)] += 1
        sent.append(at)
        return at, now, True


_shared: dict[str, RateLimiter] = {}


def for_api_key(api_key: str) -> RateLimiter:
    """Kite's limits are per api_key: every client of that key in this process draws on one budget."""
    limiter = _shared.get(api_key)
    if limiter is None:
        limiter = _shared[api_key] = RateLimiter()
    return limiter
