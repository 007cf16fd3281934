"""Reads of the broker shared by the askers that arrive together: one read answers all of them (the whole book
when several wait, the one item's own read when one does), so a burst of asks costs one request of the
api_key's shared 10/s, not one each. A read always starts after the ask: an ask arriving while a read is in
flight joins the next one."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from shared.bus import Bus
from shared.kite import waits

T = TypeVar("T")


class SharedReads(Generic[T]):
    def __init__(self, bus: Bus, name: str, one: Callable[[str], Awaitable[dict[str, T]]],
                 every: Callable[[], Awaitable[dict[str, T]]]) -> None:
        self._bus, self._name, self._one, self._every = bus, name, one, every
        self._wanted: set[str] = set()  # keys waiting for the next read
        self._read: asyncio.Future | None = None
        self.reading = asyncio.Lock()  # held through a read: asks arriving meanwhile join the next one

    async def ask(self, key: str) -> dict[str, T]:
        """What the next read found, by key (``key`` among them when the broker holds it). Raises the broker's
        error to every asker of a read that failed."""
        self._wanted.add(key)
        if self._read is None:
            self._read = asyncio.get_running_loop().create_future()
            self._bus.spawn(self._read_now(), name=self._name)
        # the read's own waits (the api_key's budget, the round trip) are its task's: to the asker — an exit
        # waiting for its stop's cancel — the whole wait is the broker's (shared/kite/waits.py), not kta's time
        with waits.waiting(waits.BROKER):
            return await asyncio.shield(self._read)

    async def _read_now(self) -> None:
        async with self.reading:
            read, wanted = self._read, self._wanted
            self._read, self._wanted = None, set()
            try:
                found = await (self._one(next(iter(wanted))) if len(wanted) == 1 else self._every())
            except asyncio.CancelledError:
                read.cancel()
                raise
            except Exception as e:  # noqa: BLE001 - every asker sees the broker's error
                read.set_exception(e)
                read.exception()  # retrieved: an asker that was cancelled leaves no warning behind
                return
            read.set_result(found)
