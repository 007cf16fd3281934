"""Cancel tasks and wait for them to end, asking again when a cancel is lost.

Python 3.11's ``asyncio.wait_for`` can lose a cancel that arrives as its inner future completes: it returns
the result and the task goes on as if never cancelled (fixed in 3.12). nats-py waits that way on its API
replies, so a worker stopped milliseconds after start-up had its KV watcher task cancelled inside
``watchall()``, carry on into the watcher's next ``get()``, and ``await task`` on shutdown never returned:
the process lived on after SIGTERM. A second cancel reaches such a task where it now waits."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

log = logging.getLogger("kta.cancelling")


async def cancel_all(tasks: Iterable[asyncio.Future], patience: float = 2.0, round_s: float = 0.1) -> None:
    """Cancel ``tasks`` and wait for each to end (their results and errors are dropped), cancelling again
    every ``round_s`` the ones still running; after ``patience`` seconds, log those left and return."""
    pending = {t for t in tasks if not t.done()}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    while pending:
        for task in pending:
            task.cancel()
        left = deadline - loop.time()
        if left <= 0:
            log.warning("tasks still running after %.1f s of cancels: %s", patience,
                        ", ".join(sorted(t.get_name() if isinstance(t, asyncio.Task) else repr(t) for t in pending)))
            return
        _done, pending = await asyncio.wait(pending, timeout=min(round_s, left))
