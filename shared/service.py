"""The life cycle every kta worker shares: log setup, one bus connection, streams ensured,
heartbeats and a health responder, SIGINT/SIGTERM → drain within 5 s (then the bus closes).

A worker's ``main.py`` is then wiring only, ending with ``amain, run = service.main("ticker", TickerWorker)``:
``TickerWorker(bus, settings)`` then ``await worker.start()`` wires its handlers and returns an object with
``async close()`` and ``status() -> dict`` (what its heartbeats report). ``run(settings)`` is the process
(``kta worker ticker``); ``amain(settings, stop)`` runs the same in a caller's event loop until ``stop`` is set."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple, Protocol

import stamina

from shared import event_loop
from shared import log as kta_log
from shared import messages as m
from shared import metrics
from shared import subjects
from shared.bus import Bus
from shared.config import Settings
from shared.stopping import run_until_signalled

log = logging.getLogger("kta.service")
HEARTBEAT_SECONDS = 5.0
CLOSE_SECONDS = 5.0  # a worker's drain; the supervisor (and compose/k8s) wait longer before SIGKILL


class Worker(Protocol):
    def status(self) -> dict[str, Any]: ...

    # a worker that hears the exchange's time may have ``exchange_clock`` (an ExchangeClock): its heartbeats carry it

    async def close(self) -> None: ...


class Startable(Protocol):
    async def start(self) -> Worker: ...


Start = Callable[[Bus, Settings], Awaitable[Worker]]


async def amain(service: str, settings: Settings, start: Start, stop: asyncio.Event | None = None,
                own_process: bool = False) -> None:
    """``own_process``: the worker is its process's only one (``kta worker``), whose start-up heap is then frozen."""
    stop = stop or asyncio.Event()
    instance = f"{socket.gethostname()}:{os.getpid()}"
    bus = await Bus.connect(settings.nats_url, service, replicas=settings.nats_replicas, creds=settings.nats_creds)
    # a cluster that is starting with us may not have elected its JetStream leaders yet
    async for attempt in stamina.retry_context(on=Exception, attempts=None, timeout=30.0, wait_initial=0.5,
                                               wait_max=0.5, wait_jitter=0):
        with attempt:
            await bus.ensure_streams()
    worker = await start(bus, settings)
    if own_process:
        # Everything alive once started (the imports, the calendar, the instruments: ~70k objects in the execution
        # worker) out of the cyclic collector's sight: they live as long as the process, and every full collection
        # walked them — one took 177 ms in the middle of a bar's signals (tick_to_order, issue #18)
        gc.freeze()
    metrics.track(service, worker.status)
    metrics.NATS_CONNECTED.labels(service).set_function(lambda: float(bus.nc.is_connected))
    exporter = None
    if settings.metrics_port:
        exporter = metrics.serve(settings.metrics_port, settings.metrics_host)
        bus.spawn(metrics.poll_lag(bus), name="nats-lag")

    def snapshot(state: str = "ready") -> m.WorkerStatus:
        info = worker.status()
        metrics = {k: float(v) for k, v in info.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        clock = getattr(worker, "exchange_clock", None)
        return m.WorkerStatus(service=service, instance=instance, state=state, ts=time.time_ns(),
                              detail=str(info.get("detail", "")), metrics=metrics,
                              exchange_ts=int(clock.now() * 1e9) if clock is not None and clock.known else 0)

    async def on_health(msg) -> None:
        with contextlib.suppress(Exception):
            await msg.respond(m.encode(m.Ok(service=service, data={"instance": instance, **worker.status(),
                                                                   "heap_frozen": gc.get_freeze_count(),
                                                                   "loop": event_loop.running()})))

    await bus.nc.subscribe(subjects.service_health(service), cb=on_health)

    async def heartbeats() -> None:
        while True:
            await bus.publish(subjects.service_status(service), snapshot())
            await asyncio.sleep(HEARTBEAT_SECONDS)

    bus.spawn(heartbeats(), name="heartbeats")
    log.info("%s ready", service, extra={"service": service, "nats": settings.nats_url})
    await stop.wait()
    log.info("%s stopping", service, extra={"service": service})
    with contextlib.suppress(Exception):
        await bus.publish(subjects.service_status(service), snapshot("stopping"))
    try:
        await asyncio.wait_for(worker.close(), CLOSE_SECONDS)
    except Exception as e:  # noqa: BLE001
        log.warning("close: %r", e)
    await bus.close()
    metrics.untrack(service)
    if exporter is not None:
        exporter.shutdown()
        exporter.server_close()


def run(service: str, settings: Settings, start: Start) -> None:
    kta_log.setup(service, settings.log_level, settings.log_format)
    run_until_signalled(lambda stop: amain(service, settings, start, stop, own_process=True), settings.event_loop)


class Entry(NamedTuple):
    amain: Callable[..., Awaitable[None]]
    run: Callable[[Settings], None]


def main(service: str, worker: Callable[[Bus, Settings], Startable]) -> Entry:
    """A worker process's two entry points: ``run(settings)`` and ``amain(settings, stop=None)``."""

    async def start(bus: Bus, settings: Settings) -> Worker:
        return await worker(bus, settings).start()

    async def service_amain(settings: Settings, stop: asyncio.Event | None = None) -> None:
        await amain(service, settings, start, stop)

    def service_run(settings: Settings) -> None:
        run(service, settings, start)

    return Entry(service_amain, service_run)
