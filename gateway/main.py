"""``kta gateway``: the Litestar app under uvicorn, with the bus connected at start-up and the
gateway answering its service health check like every worker."""

from __future__ import annotations

import contextlib

import uvicorn
from litestar import Litestar

from shared import log as kta_log
from shared import messages as m
from shared import subjects
from shared.config import Settings
from gateway.app import create_app


def _health_responder(app: Litestar):
    async def start(app: Litestar) -> None:
        services = app.state.services

        async def on_health(msg) -> None:
            stats = services.streams.stats() if services.streams else {}
            with contextlib.suppress(Exception):
                await msg.respond(m.encode(m.Ok(service="gateway", data=stats)))

        await services.bus.nc.subscribe(subjects.service_health("gateway"), cb=on_health)

    return start


def build(settings: Settings) -> Litestar:
    app = create_app(settings)
    app.on_startup.append(_health_responder(app))
    return app


def run(settings: Settings) -> None:
    kta_log.setup("gateway", settings.log_level, settings.log_format)
    uvicorn.run(build(settings), host=settings.gateway_host, port=settings.gateway_port,
                log_level=settings.log_level.lower(), access_log=False, proxy_headers=False)
