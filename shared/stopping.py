"""A process's asyncio main run until SIGINT or SIGTERM asks it to stop: the event it is handed is set then,
and the main winds down in its own time (the workers' ``service.run``, kite_sim's ``run``). Once it has, the
process ends at once: its connections, files and pools are closed and its logs flushed, and the interpreter's
own teardown (freeing every module and object) costs a kite_sim ~0.25 of the ~1.4 CPU-s of its whole life —
paid by each of the ~45 sims and ~20 workers a test run starts, and by every restart of a worker."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable

from shared.event_loop import loop_factory


def run_until_signalled(main: Callable[[asyncio.Event], Awaitable[None]], event_loop: str = "asyncio") -> None:
    """``event_loop``: the ``KTA_EVENT_LOOP`` setting (shared/event_loop.py)."""
    factory = loop_factory(event_loop)
    stop = asyncio.Event()

    async def signalled() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(signalled())  # an exception leaves through the interpreter, as ever: traceback, exit status 1
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
