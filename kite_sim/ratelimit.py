"""Kite's published request limits, counted per api_key in calendar windows of the sim's clock at each request's
arrival (kite_sim/arrivals.py), like the real OMS."""

from __future__ import annotations

import time
from collections import defaultdict

from shared.kite.ratelimit import LIMITS  # Kite's published numbers: one home, the client's


class RateLimiter:
    def __init__(self, enabled: bool = True, clock=time.time) -> None:
        self.enabled = enabled
        self._clock = clock
        self._counts: dict[tuple[str, str, int, int], int] = defaultdict(int)

    def allow(self, api_key: str, cls: str, at: float | None = None) -> bool:
        """``at``: when the request arrived (default: now)."""
        if not self.enabled:
            return True
        now = self._clock() if at is None else at
        keys = [(api_key, cls, window, int(now // window)) for window, _ in LIMITS[cls]]
        if any(self._counts[k] >= limit for k, (_, limit) in zip(keys, LIMITS[cls])):
            return False
        for k in keys:
            self._counts[k] += 1
        if len(self._counts) > 10_000:  # forget old windows
            for k in [k for k in self._counts if k[3] < int(now // k[2]) - 1]:
                del self._counts[k]
        return True
