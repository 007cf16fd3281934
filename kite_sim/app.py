"""kite_sim's HTTP + WebSocket surface: Kite Connect v3's routes, envelope, error types and codes.

Served at the host root (pykiteconnect discards any path prefix of ``root``); form-encoded bodies
except the JSON margin endpoints; ``Content-Type`` exactly as Kite sends it, because the official
client picks its parser from that header alone. The routes live in ``routes_*`` (the shared guard,
dependencies and error handler in ``kite_api``); this module builds the app around a running
:class:`~kite_sim.sim.Sim` and holds the ticker socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from litestar import Litestar, WebSocket, websocket
from litestar.datastructures import State

from kite_sim.errors import KiteError
from kite_sim.kite_api import sim_of
from kite_sim.routes_admin import AdminController, ProbeController
from kite_sim.routes_gtt import GttController
from kite_sim.routes_market import MarketController
from kite_sim.routes_session import (
    DepositoryController,
    SessionController,
    UserController,
)
from kite_sim.routes_trading import OrdersController, PortfolioController
from kite_sim.lost_answers import lose_answers
from kite_sim.sim import Sim
from kite_sim.ticker import MAX_CONNECTIONS, Connection, serve_connection

log = logging.getLogger("kite_sim.app")

CONTROLLERS = [SessionController, DepositoryController, UserController, OrdersController, PortfolioController,
               MarketController, GttController, ProbeController, AdminController]


async def refuse_upgrade(socket: WebSocket, error: KiteError) -> None:
    """Answer the upgrade request with an HTTP error, as Kite does (403 for a bad token, 429 for a fourth
    connection of an api_key), through the ASGI WebSocket denial response."""
    if "websocket.http.response" not in socket.scope.get("extensions", {}):
        await socket.close(code=4000 + error.status, reason=error.message)  # a server without the extension: 403
        return
    await socket.receive()  # the websocket.connect event
    body = json.dumps({"status": "error", "message": error.message, "data": None, "error_type": error.error_type})
    await socket.send({"type": "websocket.http.response.start", "status": error.status,
                       "headers": [(b"content-type", b"application/json")]})
    await socket.send({"type": "websocket.http.response.body", "body": body.encode()})


@websocket(["/ws", "/"])
async def ticker(socket: WebSocket) -> None:
    """Kite's ticker: ``?api_key=...&access_token=...``; at most three connections per api_key."""
    sim = sim_of(socket)
    api_key = socket.query_params.get("api_key", "")
    info = sim.accounts.check(api_key, socket.query_params.get("access_token", ""))
    if info is None:
        log.info("ticker: refused a connection with an invalid token")
        await refuse_upgrade(socket, KiteError("Incorrect `api_key` or `access_token`.", "TokenException", 403))
        return
    if sim.hub.count(api_key) >= MAX_CONNECTIONS:
        log.info("ticker: refused a connection over the limit of %d per api_key (429)", MAX_CONNECTIONS)
        await refuse_upgrade(socket, KiteError(f"Too many connections: an api_key may open {MAX_CONNECTIONS} "
                                               f"WebSocket connections.", "NetworkException", 429))
        return
    await socket.accept()
    log.info("ticker: %s connected", info.user_id)
    await serve_connection(socket, sim.hub, Connection(info.user_id, api_key))
    log.info("ticker: %s disconnected", info.user_id)


def build_app(sim: Sim) -> Litestar:
    handlers = [*CONTROLLERS, ticker]
    task: list[asyncio.Task] = []

    async def start() -> None:
        task.append(asyncio.create_task(sim.run()))

    async def stop() -> None:
        for t in task:
            t.cancel()
            with contextlib.suppress(BaseException):
                await t
        sim.save(force=True)

    return Litestar(route_handlers=handlers, on_startup=[start], on_shutdown=[stop], openapi_config=None,
                    logging_config=None, debug=False, state=State({"sim": sim}), middleware=[lose_answers])
