"""Small test kit shared by the worker tests: settings for a test stack, running a worker in-process
until the test ends, and waiting for a condition with a deadline (never a fixed sleep)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from shared.config import Settings, load


def _mocks_dir() -> Path:
    """The official Kite Connect mock responses in the project's shared/ folder: beside the checkout
    (as CI lays it out), else at its home on the dev machines."""
    for shared in (Path(__file__).resolve().parents[2] / "shared", Path("/work/shared")):
        if (shared / "reference" / "kiteconnect-mocks").is_dir():
            return shared / "reference" / "kiteconnect-mocks"
    raise FileNotFoundError("shared/reference/kiteconnect-mocks not found beside the checkout")


MOCKS = _mocks_dir()


def stack_settings(nats_url: str, data_dir, sim=None, **overrides: Any) -> Settings:
    kw: dict[str, Any] = {"nats_url": nats_url, "data_dir": str(data_dir), "log_level": "INFO"}
    if sim is not None:
        kw.update(kite_root=sim.root, kite_ws_root=sim.ws_root, kite_login_url=sim.login_url)
    kw.update(overrides)
    return load(environ={}, **kw)


@contextlib.asynccontextmanager
async def running(amain: Callable[..., Awaitable[None]], settings: Settings):
    """Run a worker's ``amain(settings, stop)`` in this event loop for the block's duration."""
    stop = asyncio.Event()
    task = asyncio.create_task(amain(settings, stop))
    try:
        yield task
    finally:
        stop.set()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(task, 15)


async def eventually(predicate: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


async def wait_health(bus, service: str, timeout: float = 15.0) -> None:
    from shared import subjects

    async def probe():
        try:
            await bus.nc.request(subjects.service_health(service), b"", timeout=0.5)
            return True
        except Exception:  # noqa: BLE001
            return False

    await eventually(probe, timeout, f"{service} health")
