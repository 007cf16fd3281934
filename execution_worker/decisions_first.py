"""Decisions first: while signals are being decided, the follow-up work of orders already sent waits.

The worker runs every user's work on one event loop. When a bar closes, its signals (24 in
``bench/tick_to_order.py``) arrive together; each one's decision and the hand-over of its order to the HTTP
client take ~1 ms, but between them the loop also ran the earlier orders' follow-up work — the broker's answer
journaled, order updates, fills read and journaled, protective stops placed — and the bar's later signals
waited behind it (issue #18). That work now waits until no signal is being decided: it is only put off, each
kind in its own order, never reordered against a decision (a decision never waits for it), and never for more
than ``MOST`` seconds (a decision waiting on the broker — a price read — holds nothing up for long)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

MOST = 0.2  # s the follow-up work is put off at most, however many signals keep coming


class DecisionsFirst:
    """How many signals are being decided now, and a wait for none to be. One per worker (the loop is shared)."""

    __slots__ = ("deciding", "_waiters")

    def __init__(self) -> None:
        self.deciding = 0
        self._waiters: list[asyncio.Future] = []

    @contextlib.contextmanager
    def decision(self) -> Iterator[None]:
        """A signal being decided (its order handed over, or it refused) inside."""
        self.deciding += 1
        try:
            yield
        finally:
            self._less()

    @contextlib.contextmanager
    def aside(self) -> Iterator[None]:
        """Inside a ``decision``: a wait that is not deciding (the user's lock held by a command that may itself
        wait for order updates): the follow-up work may run meanwhile."""
        self._less()
        try:
            yield
        finally:
            self.deciding += 1

    def _less(self) -> None:
        self.deciding -= 1
        if not self.deciding:
            waiters, self._waiters = self._waiters, []
            for w in waiters:
                if not w.done():
                    w.set_result(None)

    async def follow_up(self) -> None:
        """Return once no signal is being decided: at once if none is, at the latest ``MOST`` s from now."""
        if not self.deciding:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + MOST
        while self.deciding and loop.time() < deadline:
            waiter = loop.create_future()
            self._waiters.append(waiter)
            timer = loop.call_at(deadline, _wake, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                if waiter in self._waiters:  # woken by its timer
                    self._waiters.remove(waiter)
            # a signal's handler already scheduled to start (its runner task queued) is let in first
            await asyncio.sleep(0)


def _wake(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_result(None)
