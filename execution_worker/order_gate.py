"""The order gate of one account: Kite's 2026 order limits enforced before a request leaves kta —
10 orders/s, 400/min, 5,000/day, and at most 25 modifications of any one order.

The per-second and per-minute windows slide (stricter than Kite's calendar windows, so kta never
draws a 429 by itself): a caller over them waits for the oldest order to age out. The daily cap and
the modification cap are refused outright with an OrderGateError naming the limit — waiting would
not help. The clock and the sleep are injected so the gate is tested deterministically."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections import deque
from collections.abc import Awaitable, Callable

from shared import ist

PER_SECOND, PER_MINUTE, PER_DAY, MODIFICATIONS_PER_ORDER = 10, 400, 5000, 25


class OrderGateError(Exception):
    """An order (or modification) the gate refuses: Kite would reject it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class OrderGate:
    def __init__(self, *, per_second: int = PER_SECOND, per_minute: int = PER_MINUTE, per_day: int = PER_DAY,
                 modifications: int = MODIFICATIONS_PER_ORDER, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.windows = ((1.0, per_second, deque()), (60.0, per_minute, deque()))
        self.per_day = per_day
        self.max_modifications = modifications
        self.clock = clock
        self.sleep = sleep
        self.day = ""
        self.today = 0
        self.modifications: dict[str, int] = {}
        self.waits = 0  # how often a caller had to wait (visible in the execution summary / bench)
        self._queue: list[tuple[int, int]] = []  # (0 urgent / 1 not, arrival): the head is the next to go
        self._arrivals = itertools.count()
        self._turn = asyncio.Condition()

    def wait_needed(self, now: float, daily: bool = True) -> float:
        """Seconds until one more order fits the sliding windows (0 = now). Raises at the daily cap
        (``daily`` False: a cancel, never refused by it)."""
        self._roll_day(now)
        if daily and self.today >= self.per_day:
            raise OrderGateError("ORDER_DAILY_LIMIT", f"{self.today} orders today: Kite allows {self.per_day} a day")
        wait = 0.0
        for span, limit, stamps in self.windows:
            while stamps and stamps[0] <= now - span:
                stamps.popleft()
            if len(stamps) >= limit:
                wait = max(wait, stamps[len(stamps) - limit] + span - now)
        return wait

    def admit(self, now: float, daily: bool = True) -> bool:
        """Count one order call sent at ``now`` if it fits; False if the caller must wait."""
        if self.wait_needed(now, daily) > 0:
            return False
        for _, _, stamps in self.windows:
            stamps.append(now)
        self.today += daily
        return True

    async def acquire(self, *, daily: bool = True, urgent: bool = False) -> None:
        """Wait until one more order call fits, then count it. Callers go in order of arrival, except that
        an ``urgent`` one (it takes risk off: a stop, a flatten, an exit, a cancel) goes before every
        entry still waiting — a burst of entries never holds a position's stop back. Placements and
        modifications count toward the day's cap; a cancel (``daily`` False) only waits for the windows
        — it is never refused for the cap, since it only ever takes risk off."""
        me = (0 if urgent else 1, next(self._arrivals))
        heapq.heappush(self._queue, me)
        try:
            while True:
                async with self._turn:
                    while self._queue[0] != me:
                        await self._turn.wait()
                if self.admit(now := self.clock(), daily):
                    return
                self.waits += 1
                await self.sleep(max(self.wait_needed(now, daily), 0.001))  # an urgent arrival may go first
        finally:
            self._queue.remove(me)
            heapq.heapify(self._queue)
            async with self._turn:
                self._turn.notify_all()

    @property
    def queued(self) -> int:
        """Callers waiting for a slot."""
        return len(self._queue)

    def modify(self, order_id: str) -> None:
        """Count one modification of ``order_id``; the 26th is refused."""
        done = self.modifications.get(order_id, 0)
        if done >= self.max_modifications:
            raise OrderGateError("MODIFICATION_LIMIT", f"order {order_id} was modified {done} times: Kite allows "
                                                       f"{self.max_modifications}")
        self.modifications[order_id] = done + 1

    def forget(self, order_id: str) -> None:
        """A finished order can no longer be modified: drop its count (keeps the map small)."""
        self.modifications.pop(order_id, None)

    def _roll_day(self, now: float) -> None:
        day = ist.day(now)
        if day != self.day:
            self.day, self.today = day, 0
            self.modifications.clear()
