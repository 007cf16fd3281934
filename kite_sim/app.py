"""kite_sim's HTTP + WebSocket surface: Kite Connect v3's routes, envelope, error types and codes.

Served at the host root (pykiteconnect discards any path prefix of ``root``); form-encoded bodies
except the JSON margin endpoints; ``Content-Type`` exactly as Kite sends it, because the official
client picks its parser from that header alone. The routes live in ``routes_*``; this module holds the
running sim's state, authentication and rate limits, the market heartbeat and the ticker socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from datetime import date
from pathlib import Path

from litestar import Litestar, Request, Response, WebSocket, websocket

from kite_sim import routes_admin, routes_market, routes_session, routes_trading, snapshot
from kite_sim.accounts import Accounts
from kite_sim.broker import Broker
from kite_sim.envelope import error_response, ok
from kite_sim.errors import KiteError
from kite_sim.faults import Faults
from kite_sim.market import Market
from kite_sim.orders import Holding, paise
from kite_sim.ratelimit import RateLimiter, endpoint_class
from kite_sim.settlement import settle_day
from kite_sim.ticker import MAX_CONNECTIONS, Connection, TickerHub, serve_connection

log = logging.getLogger("kite_sim.app")

SNAPSHOT_EVERY = 1.0  # wall seconds between checks for state to save


class Sim:
    """The running sim's state, shared by every handler."""

    def __init__(self, accounts: Accounts, market: Market, faults: Faults, admin: bool, rate_limits: bool = True,
                 tick_interval: float = 0.25, settle: bool = False, snapshot_path: str | Path | None = None,
                 restore: dict | None = None) -> None:
        self.accounts = accounts
        self.market = market
        self.faults = faults
        self.admin = admin
        self.hub = TickerHub(market)
        self.broker = Broker(market, faults, self._order_update, settle_day if settle else None)
        self.limiter = RateLimiter(rate_limits)
        self.tick_interval = tick_interval
        self.snapshot_path = Path(snapshot_path) if snapshot_path else None
        self._saved = ""
        for user in accounts.users.values():
            acc = self.broker.account(user.user_id, user.funds)
            for sym, (qty, avg) in user.holdings.items():
                inst = market.universe.by_key.get(f"NSE:{sym}")
                if inst:
                    acc.holdings[inst.instrument_token] = Holding(qty, paise(avg))
        if restore is not None:
            market.roll_universe(date.fromisoformat(restore["day"]))  # the tokens the positions refer to
            snapshot.restore(self, restore)
            self._saved = snapshot.dumps(self)

    def _order_update(self, user_id: str, order: dict) -> None:
        self.hub.order_update(user_id, order)

    def changed(self) -> None:
        """State changed outside the order flow (sessions, conversions): save soon."""
        self._saved = ""

    def save(self, force: bool = False) -> None:
        """Write the snapshot if the state changed (or ``force``, at shutdown, for the clock)."""
        if self.snapshot_path is None:
            return
        text = snapshot.dumps(self)
        if force or text != self._saved:
            snapshot.write(self.snapshot_path, text, self.market.clock)
            self._saved = text

    async def run(self) -> None:
        """The market heartbeat: settle days, match resting orders, push ticks, save the snapshot."""
        loop = asyncio.get_running_loop()
        last_drop = last_save = loop.time()
        while True:
            await asyncio.sleep(self.tick_interval)
            try:
                self.broker.tick()
                malformed = self.faults.take_malformed()
                if malformed:
                    log.info("fault: sending a malformed frame to %d connections", len(self.hub.connections))
                self.hub.broadcast(malformed=malformed)
                now = loop.time()
                if self.faults.drop_ws_every and now - last_drop >= self.faults.drop_ws_every:
                    last_drop = now
                    log.info("fault: dropped %d ticker connections", self.hub.drop_all())
                if now - last_save >= SNAPSHOT_EVERY:
                    last_save = now
                    self.save()
            except Exception:  # noqa: BLE001 - the market must keep running
                log.exception("market loop error")

    def auth(self, request: Request) -> str:
        header = request.headers.get("authorization", "")
        scheme, _, cred = header.partition(" ")
        api_key, _, token = cred.partition(":")
        info = self.accounts.check(api_key, token) if scheme.lower() == "token" else None
        if info is None:
            raise KiteError("Incorrect `api_key` or `access_token`.", "TokenException", 403)
        cls = endpoint_class(request.method, request.url.path)
        if not self.limiter.allow(api_key, cls):
            log.info("429: %s %s over Kite's %s limit", request.method, request.url.path, cls)
            raise KiteError("Too many requests", "NetworkException", 429)
        if self.faults.take_rate_limit():
            log.info("fault: 429 for %s %s", request.method, request.url.path)
            raise KiteError("Too many requests", "NetworkException", 429)
        return info.user_id

    async def guarded(self, request: Request, fn) -> Response:
        """Authenticate, then answer ``fn(user_id)`` (a value or an awaitable) in Kite's envelope."""
        if self.faults.latency_ms:
            await asyncio.sleep(self.faults.latency_ms / 1000)
        try:
            result = fn(self.auth(request))
            if inspect.isawaitable(result):
                result = await result
            return ok(result)
        except KiteError as e:
            if e.status != 429:
                log.info("%d %s: %s %s", e.status, e.error_type, request.method, request.url.path)
            return error_response(e)


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
                *routes_admin.handlers(sim), websocket("/ws")(ticker), websocket("/")(ticker)]
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
                    logging_config=None, debug=False)
