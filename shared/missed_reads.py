"""The reads of a partition a worker left to the copy that owned it, kept a few seconds, so that a worker claiming
the partition answers the ones still waiting.

Every copy of a partitioned worker hears every command and answers only its own partitions' (``Bus.serve``'s
``accept``). A partition changing hands (a clean stop, a rebalance) has a moment when neither copy answers it —
the giver has stopped, the taker has not claimed yet — and a read asked then went unanswered until the gateway
gave up on it (a 503 after 5 s). The taker keeps what it heard meanwhile and serves those reads as it claims the
partition. A read the giver did answer is answered twice: harmless, the asker takes the first reply and reads change
nothing. Commands that change something are never kept (the gateway retries them under their request id)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

from shared import messages as m
from shared import subjects

KEEP = 5.0  # the gateway's patience for a read (gateway/trading.py): one kept longer has no asker left
LIMIT = 512  # reads kept a partition, the newest


class MissedReads:
    def __init__(self, count: int, keep: float = KEEP, limit: int = LIMIT) -> None:
        self.keep = keep
        self._kept: list[deque[tuple[float, Any, Callable[[Any], None]]]] = [deque(maxlen=limit) for _ in range(count)]
        self.replayed = 0

    def add(self, p: int, msg: Any, again: Callable[[Any], None]) -> None:
        """A command of partition ``p`` heard and not answered here; ``again(msg)`` serves it later."""
        if subjects.verb_of(msg.subject) not in m.READ_VERBS:
            return
        kept, now = self._kept[p], time.monotonic()
        while kept and now - kept[0][0] > self.keep:
            kept.popleft()
        kept.append((now, msg, again))

    def replay(self, p: int, since: float) -> int:
        """Serve the reads of ``p`` heard since ``since`` (monotonic) and forget the rest: how many."""
        kept, n, oldest = self._kept[p], 0, max(since, time.monotonic() - self.keep)
        while kept:
            at, msg, again = kept.popleft()
            if at >= oldest:
                again(msg)
                n += 1
        self.replayed += n
        return n
