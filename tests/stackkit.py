"""The whole kta stack for end-to-end tests: the three workers in-process (strategy, execution,
ticker) until the block ends, each answering its health check (the partitioned ones owning every partition)
before the block starts, stopped together."""

from __future__ import annotations

import contextlib

from execution_worker.main import amain as execution_main
from strategy_worker.main import amain as strategy_main
from ticker_worker.main import amain as ticker_main
from shared.partition import PARTITIONS
from tests.helpers import running_together, wait_health

SERVICES = ("strategy", "execution", "ticker")
PARTITIONED = ("strategy", "execution")  # a user's commands answered only by the owner of its partition


@contextlib.asynccontextmanager
async def workers(settings, bus):
    async with running_together((strategy_main, settings), (execution_main, settings), (ticker_main, settings)):
        for service in SERVICES:  # a loaded machine: leases and streams first
            await wait_health(bus, service, timeout=40, partitions=PARTITIONS if service in PARTITIONED else None)
        yield
