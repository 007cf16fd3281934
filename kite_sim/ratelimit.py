"""Kite's published request limits, counted per api_key in calendar windows like the real OMS."""

from __future__ import annotations

import time
from collections import defaultdict

# endpoint class -> [(window seconds, max requests)]
LIMITS: dict[str, list[tuple[int, int]]] = {
    "quote": [(1, 1)],
    "historical": [(1, 3)],
    "orders": [(1, 10), (60, 400), (86400, 5000)],
    "other": [(1, 10)],
}


def endpoint_class(method: str, path: str) -> str:
    if path.startswith("/quote"):
        return "quote"
    if path.startswith("/instruments/historical"):
        return "historical"
    if path.startswith("/orders/") and method in ("POST", "PUT", "DELETE"):
        return "orders"
    return "other"


class RateLimiter:
    def __init__(self, enabled: bool = True, clock=time.time) -> None:
        self.enabled = enabled
        self._clock = clock
        self._counts: dict[tuple[str, str, int, int], int] = defaultdict(int)

    def allow(self, api_key: str, cls: str) -> bool:
        if not self.enabled:
            return True
        now = self._clock()
        keys = [(api_key, cls, window, int(now // window)) for window, _ in LIMITS[cls]]
        if any(self._counts[k] >= limit for k, (_, limit) in zip(keys, LIMITS[cls])):
            return False
        for k in keys:
            self._counts[k] += 1
        if len(self._counts) > 10_000:  # forget old windows
            for k in [k for k in self._counts if k[3] < int(now // k[2]) - 1]:
                del self._counts[k]
        return True
