"""Where a decision's time goes between its tick and its order: kta's own work, or waiting on Kite.

Kite's share is of two kinds and both are reported beside kta's, never hidden in it: the **rate
budget** (the order gate's 10 orders/s, the api_key's shared 10 requests/s: Kite's limits, which kta
must wait out) and the **broker's answers** (an HTTP round trip, an exit waiting for its stop's
cancel to be confirmed). A ``Stopwatch`` is started for one decision (a signal) in the task handling
it; the Kite client and the execution worker mark their waits with ``waiting("budget" | "broker")``,
and the moment an order is handed to the HTTP client is stamped by ``handed(tag)``. What is left —
handed − tick − waits — is kta's internal time (``bench/tick_to_order.py``, the execution summary).

Only the task that started the watch counts: a task it spawns (a read-back, a protection) inherits
the context but not the decision — unless it ``carried`` it on (a decided signal's orders on their way
to the broker, in a task beside the user's next decision)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

BUDGET, BROKER = "budget", "broker"
T = TypeVar("T")


class Stopwatch:
    __slots__ = ("since", "sink", "owner", "budget", "broker", "arrived", "locked", "decided", "stored")

    def __init__(self, since_ns: int, sink: Callable[..., None]) -> None:
        self.since = since_ns  # epoch ns the decision started (its tick's decode time)
        self.sink = sink  # ROW: (tag, since, handed, budget wait, broker wait, arrived, locked, decided, stored), ns
        self.owner = asyncio.current_task()
        self.budget = 0
        self.broker = 0
        self.arrived = time.time_ns()  # the signal reached the worker's handler
        self.locked = self.decided = 0  # the user's decision lock taken; the decision made (``stage``)
        self.stored = 0  # the signal was stored in its stream (the server's stamp, µs precision; 0: unknown)


_current: ContextVar[Stopwatch | None] = ContextVar("kta_stopwatch", default=None)


def _mine() -> Stopwatch | None:
    watch = _current.get()
    return watch if watch is not None and watch.owner is asyncio.current_task() else None


@contextmanager
def started(since_ns: int, sink: Callable[[str, int, int, int, int], None]) -> Iterator[Stopwatch]:
    watch = Stopwatch(since_ns, sink)
    token = _current.set(watch)
    try:
        yield watch
    finally:
        _current.reset(token)


async def carried(work: Awaitable[T]) -> T:
    """Run ``work`` (in a task of its own) as the rest of the decision whose watch its creator started:
    its waits count as Kite's and its hand-off is the decision's, no longer the creator's."""
    watch = _current.get()
    if watch is not None:
        watch.owner = asyncio.current_task()
    return await work


def pass_on(task: asyncio.Task) -> None:
    """The decision goes on in ``task`` (its first step ran in this one: shared/eager.py)."""
    watch = _mine()
    if watch is not None:
        watch.owner = task


@contextmanager
def waiting(kind: str) -> Iterator[None]:
    """Time spent inside counts as waiting on Kite (``BUDGET`` or ``BROKER``), not as kta's work."""
    watch = _mine()
    if watch is None:
        yield
        return
    t0 = time.perf_counter_ns()
    try:
        yield
    finally:
        spent = time.perf_counter_ns() - t0
        if kind == BUDGET:
            watch.budget += spent
        else:
            watch.broker += spent


def stage(name: str, at_ns: int = 0) -> None:
    """Stamp a stage of the decision now (or ``at_ns``): ``"locked"`` (the user's decision lock taken),
    ``"decided"``, or ``"stored"`` (the signal in its stream: the server's time)."""
    watch = _mine()
    if watch is not None:
        setattr(watch, name, at_ns or time.time_ns())


def handed(tag: str | None) -> None:
    """The order ``tag`` is handed to the HTTP client now."""
    watch = _mine()
    if watch is not None and tag:
        watch.sink(tag, watch.since, time.time_ns(), watch.budget, watch.broker, watch.arrived, watch.locked,
                   watch.decided, watch.stored)


def summary(rows) -> dict:
    """p50 / p99 in ms of kta's internal time, the budget wait and the broker wait over ``rows``
    (the sink's tuples)."""
    if not rows:
        return {"orders": 0}
    parts = {"internal_ms": [], "budget_wait_ms": [], "broker_wait_ms": []}
    for _, since, at, budget, broker, *_ in rows:
        parts["internal_ms"].append((at - since - budget - broker) / 1e6)
        parts["budget_wait_ms"].append(budget / 1e6)
        parts["broker_wait_ms"].append(broker / 1e6)
    out: dict = {"orders": len(rows)}
    for name, values in parts.items():
        values.sort()
        out[name] = {q: round(values[min(len(values) - 1, int(p * len(values)))], 3)
                     for q, p in (("p50", 0.5), ("p99", 0.99))}
    return out
