"""A process's asyncio main run until SIGINT or SIGTERM asks it to stop: the event it is handed is set then,
and the main winds down in its own time (the workers' ``service.run``, kite_sim's ``run``)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable


def run_until_signalled(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    stop = asyncio.Event()

    async def signalled() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    asyncio.run(signalled())
