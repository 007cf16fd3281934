"""Small test kit shared by the worker tests: settings for a test stack, running a worker in-process
until the test ends, and waiting for a condition with a deadline (never a fixed sleep).

``eventually`` is the one poll the suite allows (``eventually_blocking`` is the same for synchronous
tests and threads): it re-checks a condition until it holds or the deadline passes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from shared.config import Settings, load

POLL_SECONDS = 0.02


# the one KTA_ setting the suite takes from its caller (tests/conftest.py clears the rest, after this import):
# KTA_EVENT_LOOP=uvloop runs the tests' own loop, their stacks' processes and their gateways' HTTP on uvloop/httptools
EVENT_LOOP = os.environ.get("KTA_EVENT_LOOP", "asyncio")
NATS_CREDS: dict[str, str] = {}  # nats url -> its credentials directory (conftest's nats_server)


def stack_settings(nats_url: str, data_dir, sim=None, **overrides: Any) -> Settings:
    """Settings of a test stack; each process connects to ``nats_url`` as its own identity."""
    kw: dict[str, Any] = {"nats_url": nats_url, "data_dir": str(data_dir), "log_level": "INFO",
                          "nats_creds": NATS_CREDS.get(nats_url, ""),
                          # the tests' sims run at 60x and pass 15:15 every six minutes: kta's own MIS square-off
                          # (execution_worker/intraday.py) is on only in the tests that cross a day on purpose
                          "mis_square_off_at": "", "event_loop": EVENT_LOOP}
    if sim is not None:
        kw.update(kite_root=sim.root, kite_ws_root=sim.ws_root, kite_login_url=sim.login_url)
    kw.update(overrides)
    return load(environ={}, **kw)


Worker = Callable[..., Awaitable[None]]


@contextlib.asynccontextmanager
async def running(amain: Worker, settings: Settings):
    """Run a worker's ``amain(settings, stop)`` in this event loop for the block's duration."""
    async with running_together((amain, settings)) as (task,):
        yield task


@contextlib.asynccontextmanager
async def running_together(*workers: tuple[Worker, Settings]):
    """Several workers' ``amain(settings, stop)`` in this event loop for the block's duration, stopped together
    as a deployment's processes are (each on its own SIGTERM): one's graceful stop does not wait for another's."""
    stops = [asyncio.Event() for _ in workers]
    tasks = [asyncio.create_task(amain(settings, stop)) for (amain, settings), stop in zip(workers, stops)]
    try:
        yield tasks
    finally:
        for stop in stops:
            stop.set()
        with contextlib.suppress(BaseException):
            await asyncio.gather(*(asyncio.wait_for(task, 15) for task in tasks), return_exceptions=True)


class _Deadline:
    def __init__(self, timeout: float, what: str) -> None:
        self.timeout, self.what, self.at = timeout, what, time.monotonic() + timeout

    def check(self) -> None:
        if time.monotonic() > self.at:
            raise AssertionError(f"timed out after {self.timeout}s waiting for {self.what}")


async def eventually(predicate: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    """The predicate's first truthy value (a coroutine's result is awaited)."""
    deadline = _Deadline(timeout, what)
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        deadline.check()
        await asyncio.sleep(POLL_SECONDS)


def eventually_blocking(predicate: Callable[[], Any], timeout: float = 15.0, what: str = "condition",
                        poll: float = 0.1) -> Any:
    """``eventually`` for synchronous code: blocks the calling thread between checks."""
    deadline = _Deadline(timeout, what)
    pause = threading.Event()
    while True:
        value = predicate()
        if value:
            return value
        deadline.check()
        pause.wait(poll)


async def wait_health(bus, service: str, timeout: float = 15.0, partitions: int | None = None) -> None:
    """Until ``service`` answers its health check — and, with ``partitions``, owns that many partitions: a
    command for a user whose partition nobody owns yet goes unanswered (shared/partition.py)."""
    from shared import messages as m
    from shared import subjects

    async def probe():
        try:
            reply = await bus.nc.request(subjects.service_health(service), b"", timeout=0.5)
        except Exception:  # noqa: BLE001
            return False
        return partitions is None or m.reply_decoder.decode(reply.data).data.get("partitions") == partitions

    await eventually(probe, timeout, f"{service} health" + (f" with {partitions} partitions" if partitions else ""))


async def connect(nats_url: str, service: str, identity: str = "admin", **kw):
    """A bus connected to a test nats-server as ``identity`` (``admin`` may do anything; a service
    name gets exactly that service's permissions), reporting itself as ``service``."""
    from pathlib import Path

    from shared.bus import Bus

    creds = NATS_CREDS.get(nats_url, "")
    return await Bus.connect(nats_url, service, creds=str(Path(creds) / f"{identity}.creds") if creds else "", **kw)


class LosesFirstCancel:
    """A coroutine that loses its first cancel, as Python 3.11's ``wait_for`` does when its inner future has won
    the race, and goes on to its next wait; a second cancel ends it. ``waiting``: it is in its first wait."""

    def __init__(self) -> None:
        self.waiting, self.went_on = asyncio.Event(), asyncio.Event()

    async def __call__(self, *_args: Any) -> None:
        self.waiting.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            asyncio.current_task().uncancel()
        self.went_on.set()
        await asyncio.Event().wait()


async def ends_within(close: Awaitable[Any], timeout: float = 10.0) -> bool:
    """``close`` finished within ``timeout``; if not, it is cancelled (which cancels what it waits for a second
    time) and awaited, so the test goes on to say so."""
    closing = asyncio.ensure_future(close)
    done, _ = await asyncio.wait({closing}, timeout=timeout)
    if not done:
        closing.cancel()
        await asyncio.wait({closing})
    return closing in done
