"""Idempotent commands: the first outcome of a request id, remembered for a while.

A client that sends a command with a request id (header ``Kta-Request-Id``, ``Bus.request(...,
request_id=)``) may send it again after a timeout: the serving side answers the retry with the first
reply instead of doing it again — or, when the first is still running, waits for it. Remembered per
(subject, id) — the subject names the user, service and verb — for ``ttl`` seconds, at most ``size``
entries (oldest forgotten first), in the memory of the process that served it."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TypeVar

HEADER = "Kta-Request-Id"
MAX_ID = 64

R = TypeVar("R")


class ReplyCache:
    def __init__(self, ttl: float = 120.0, size: int = 10_000) -> None:
        self.ttl = ttl
        self.size = size
        self._entries: OrderedDict[tuple[str, str], tuple[float, asyncio.Future]] = OrderedDict()
        self.replayed = 0  # retries answered from memory

    async def once(self, subject: str, request_id: str, work: Callable[[], Awaitable[R]]) -> R:
        """``work()``'s result, computed at most once per (subject, request_id) within the ttl."""
        now = time.monotonic()
        self._expire(now)
        key = (subject, request_id)
        entry = self._entries.get(key)
        if entry is not None:
            self.replayed += 1
            return await asyncio.shield(entry[1])
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._entries[key] = (now + self.ttl, future)
        try:
            result = await work()
        except BaseException as e:
            self._entries.pop(key, None)  # nothing to remember: a retry runs it again
            future.set_exception(e)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waited
            raise
        future.set_result(result)
        return result

    def _expire(self, now: float) -> None:
        while self._entries:
            key, (expires, future) = next(iter(self._entries.items()))
            if (expires > now or not future.done()) and len(self._entries) <= self.size:
                break
            self._entries.popitem(last=False)
