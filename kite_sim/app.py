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
import logging

from litestar import Litestar, WebSocket, websocket
from litestar.datastructures import State

from kite_sim import routes_admin, routes_market, routes_session, routes_trading
from kite_sim.routes_gtt import GttController
from kite_sim.sim import Sim
from kite_sim.ticker import MAX_CONNECTIONS, Connection, serve_connection

log = logging.getLogger("kite_sim.app")


def build_app(sim: Sim) -> Litestar:
    async def ticker(socket: WebSocket) -> None:
        api_key = socket.query_params.get("api_key", "")
        info = sim.accounts.check(api_key, socket.query_params.get("access_token", ""))
        if info is None:
            log.info("ticker: refused a connection with an invalid token")
            await socket.close(code=4003, reason="invalid token")  # before accept: a 403 on the upgrade
            return
        if sim.hub.count(api_key) >= MAX_CONNECTIONS:
            log.info("ticker: refused a connection over the limit of %d", MAX_CONNECTIONS)
            await socket.close(code=4029, reason="too many connections")
            return
        await socket.accept()
        log.info("ticker: %s connected", info.user_id)
        await serve_connection(socket, sim.hub, Connection(info.user_id, api_key))
        log.info("ticker: %s disconnected", info.user_id)

    handlers = [*routes_session.handlers(sim), *routes_trading.handlers(sim), *routes_market.handlers(sim),
                *routes_admin.handlers(sim), GttController, websocket("/ws")(ticker), websocket("/")(ticker)]
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
                    logging_config=None, debug=False, state=State({"sim": sim}))
