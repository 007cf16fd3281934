"""KiteClients.close() ends though one of its tasks ignored its cancellation (Python 3.11's asyncio.wait_for can
swallow one landing as its inner future completes — nats-py's requests use it): a backtest service's close hung
to the test's 180 s timeout awaiting its cancelled session watch."""

from __future__ import annotations

import asyncio

from shared.kite.clients import TASK_STOP_SECONDS, KiteClients
from tests.helpers import stack_settings


async def test_close_does_not_wait_for_good_on_a_task_that_ignored_its_cancellation(nats_server, bus, data_dir):
    clients = KiteClients(bus, stack_settings(nats_server, data_dir))
    cancels = []
    never = asyncio.Event()

    async def stubborn() -> None:
        while True:
            try:
                await never.wait()
            except asyncio.CancelledError:
                cancels.append(1)
                if len(cancels) > 1:
                    raise  # the second cancel is taken

    clients._tasks = [asyncio.ensure_future(stubborn())]
    await asyncio.sleep(0)  # it runs, and waits
    await asyncio.wait_for(clients.close(), TASK_STOP_SECONDS * 10)  # before: awaited the task for good
    await asyncio.wait(clients._tasks, timeout=5)
    assert clients._tasks[0].cancelled() and len(cancels) == 2  # cancelled again, and it stopped
