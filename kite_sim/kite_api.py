"""What every Kite route shares, as Litestar wiring: the sim as a dependency, Kite's session check (and
request limits, and the latency fault) as a guard, the authenticated user as a dependency, and a
:class:`KiteError` answered in Kite's error envelope. ``KiteController`` puts them together."""

from __future__ import annotations

import asyncio
import logging

from litestar import Controller, Request, Response
from litestar.connection import ASGIConnection
from litestar.di import Provide
from litestar.handlers.base import BaseRouteHandler

from kite_sim.envelope import error_response
from kite_sim.errors import KiteError
from kite_sim.sim import Sim

log = logging.getLogger("kite_sim.api")

USER = "kite_user"  # scope key the guard fills


def sim_of(connection: ASGIConnection) -> Sim:
    return connection.app.state.sim


async def kite_session(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """``Authorization: token api_key:access_token`` → the user, within Kite's limits (403 / 429 otherwise)."""
    sim = sim_of(connection)
    if sim.faults.latency_ms:
        if isinstance(connection, Request):
            await connection.body()  # taken in before the delay: a client that gives up meanwhile still placed it
        await asyncio.sleep(sim.faults.latency_ms / 1000)
    connection.scope[USER] = sim.auth(connection)  # type: ignore[literal-required]


def provide_sim(request: Request) -> Sim:
    return sim_of(request)


def provide_user_id(sim: Sim, request: Request) -> str:
    """Taking ``sim`` puts the two dependencies in separate batches: Litestar then resolves each directly,
    without a task group per request (a fourfold cost on these small handlers)."""
    return request.scope[USER]  # type: ignore[literal-required]


def kite_error(request: Request, exc: KiteError) -> Response:
    if exc.status != 429:  # 429s are logged where they are decided
        log.info("%d %s: %s %s", exc.status, exc.error_type, request.method, request.url.path)
    return error_response(exc)


class KiteController(Controller):
    """A controller of Kite routes: every handler needs a Kite session and may take ``sim`` and ``user_id``."""

    guards = [kite_session]
    dependencies = {"sim": Provide(provide_sim, sync_to_thread=False),
                    "user_id": Provide(provide_user_id, sync_to_thread=False)}
    exception_handlers = {KiteError: kite_error}
