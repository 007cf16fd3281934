"""``kta gateway``: the Litestar app under uvicorn, with the bus connected at start-up and the
gateway answering its service health check like every worker."""

from __future__ import annotations

import contextlib
import gc
import os
import socket

import uvicorn
from litestar import Litestar

from shared import event_loop
from shared import log as kta_log
from shared import messages as m
from shared import subjects
from shared.config import Settings
from gateway.app import create_app


def _health_responder(app: Litestar):
    instance = f"{socket.gethostname()}:{os.getpid()}"

    async def start(app: Litestar) -> None:
        services = app.state.services

        async def on_health(msg) -> None:
            stats = {**(services.streams.stats() if services.streams else {}), "loop": event_loop.running(),
                     "instance": instance}
            with contextlib.suppress(Exception):
                await msg.respond(m.encode(m.Ok(service="gateway", data=stats)))

        await services.bus.nc.subscribe(subjects.service_health("gateway"), cb=on_health)

    return start


async def _freeze_heap(app: Litestar) -> None:
    """Everything alive once the gateway has started (~180k objects: Litestar's route and type tables,
    compiled templates, the imports) is moved out of the cyclic collector's sight (``gc.freeze``). They
    live as long as the process, and a full collection walked them all: one took 150-400 ms on this
    machine in the middle of a burst of dashboard loads, every request waiting behind it."""
    gc.freeze()


def build(settings: Settings, *, own_process: bool = False) -> Litestar:
    """The gateway's app with its health responder; ``own_process``: the app is its process's only one
    (``kta gateway``, a bench's gateway), so its start-up heap is frozen — never in a test process that
    builds many apps one after another (frozen objects are never collected)."""
    app = create_app(settings)
    app.on_startup.append(_health_responder(app))
    if own_process:
        app.on_startup.append(_freeze_heap)
    return app


def run(settings: Settings) -> None:
    kta_log.setup("gateway", settings.log_level, settings.log_format)
    uvicorn.run(build(settings, own_process=True), host=settings.gateway_host, port=settings.gateway_port,
                log_level=settings.log_level.lower(), access_log=False, proxy_headers=False,
                **event_loop.uvicorn_options(settings.event_loop))
