"""The running sim's state, shared by every route: accounts and sessions, the market, the broker (orders,
GTTs), faults, Kite's request limits, the ticker hub; the market heartbeat and snapshot saving."""

from __future__ import annotations

import asyncio
import logging
import re
from collections import Counter, deque
from datetime import date
from pathlib import Path

from litestar.connection import ASGIConnection

from kite_sim import snapshot
from kite_sim.accounts import Accounts
from kite_sim.broker import Broker
from kite_sim.errors import KiteError
from kite_sim.failures import Failures
from kite_sim.faults import Faults
from kite_sim.market import Market
from kite_sim.orders import Account, Holding, paise
from kite_sim.arrivals import arrived
from kite_sim.ratelimit import RateLimiter
from kite_sim.settlement import settle_day
from kite_sim.ticker import TickerHub
from shared.kite.ratelimit import endpoint_class

log = logging.getLogger("kite_sim.sim")

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
        self.hub = TickerHub(market, faults)
        self.broker = Broker(market, faults, self._order_update, settle_day if settle else None)
        self.limiter = RateLimiter(rate_limits)
        self.tick_interval = tick_interval
        self.failures = Failures(log)
        self.history_calls: deque[dict] = deque(maxlen=1000)  # what /instruments/historical was asked (admin)
        self.requests: Counter[tuple[str, str]] = Counter()  # Kite requests arrived: (api_key, "METHOD /route") (admin)
        self.snapshot_path = Path(snapshot_path) if snapshot_path else None
        self._saved = ""
        for user in accounts.users.values():
            self.open_account(user.user_id)
        if restore is not None:
            market.roll_universe(date.fromisoformat(restore["day"]))  # the tokens the positions refer to
            snapshot.restore(self, restore)
            self._saved = snapshot.dumps(self)

    def open_account(self, user_id: str) -> Account | None:
        """The user's account as it opens: the starting funds and holdings, no orders, trades, positions
        or GTTs. Replacing one keeps its eDIS setting (and the user's sessions); order and trade ids keep
        counting, so none is reused. Returns the account it replaced, if any."""
        user = self.accounts.users[user_id]
        old = self.broker.accounts.pop(user_id, None)
        acc = self.broker.account(user_id, user.funds)
        for sym, (qty, avg) in user.holdings.items():
            inst = self.market.universe.by_key.get(f"NSE:{sym}")
            if inst:
                acc.holdings[inst.instrument_token] = Holding(qty, paise(avg))
        if old is not None:
            acc.depository.edis = old.depository.edis
            self.changed()
        return old

    def reset(self) -> None:
        """What a freshly started sim shows while the clock and the market run on: every account opened
        afresh, every fault off, every pinned price released; sessions stay valid."""
        self.faults.reset()
        self.market.overrides.clear()
        self.history_calls.clear()
        self.requests.clear()
        for user_id in self.accounts.users:
            self.open_account(user_id)

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
        """The market heartbeat: settle days, match resting orders, push ticks, save the snapshot. Each step
        runs even when another one fails (a failure is logged once, not on every heartbeat)."""
        loop = asyncio.get_running_loop()
        last_drop = last_save = loop.time()
        while True:
            await asyncio.sleep(self.tick_interval)
            self._step("the broker's heartbeat", self.broker.tick)
            self._step("the ticker broadcast", self._broadcast)
            now = loop.time()
            if self.faults.drop_ws_every and now - last_drop >= self.faults.drop_ws_every:
                last_drop = now
                log.info("fault: dropped %d ticker connections", self.hub.drop_all())
            if now - last_save >= SNAPSHOT_EVERY:
                last_save = now
                self._step("saving the snapshot", self.save)

    def _step(self, what: str, fn) -> None:
        try:
            fn()
        except Exception:  # noqa: BLE001 - the market must keep running
            self.failures.failed(what, what)
        else:
            self.failures.ok(what, what)

    def _broadcast(self) -> None:
        malformed = self.faults.take_malformed()
        if malformed:
            log.info("fault: sending a malformed frame to %d connections", len(self.hub.connections))
        self.hub.broadcast(malformed=malformed)

    def auth(self, request: ASGIConnection) -> str:
        """The user of a request's ``Authorization: token api_key:access_token``, within Kite's request limits."""
        header = request.headers.get("authorization", "")
        scheme, _, cred = header.partition(" ")
        api_key, _, token = cred.partition(":")
        info = self.accounts.check(api_key, token) if scheme.lower() == "token" else None
        if info is None:
            raise KiteError("Incorrect `api_key` or `access_token`.", "TokenException", 403)
        method, path = request.scope["method"], request.url.path
        self.requests[api_key, f"{method} {route_of(request)}"] += 1  # the 429s too: they were asked
        cls = endpoint_class(method, path)
        if not self.limiter.allow(api_key, cls, at=arrived(request.scope)):
            log.info("429: %s %s over Kite's %s limit", method, path, cls)
            raise KiteError("Too many requests", "NetworkException", 429)
        if self.faults.take_rate_limit():
            log.info("fault: 429 for %s %s", method, path)
            raise KiteError("Too many requests", "NetworkException", 429)
        return info.user_id


def route_of(request: ASGIConnection) -> str:
    """The route a request matched: "/orders/{order_id}". (Litestar's template names a parameter as the first route
    to declare it at that place does, "/orders/{variety}": the handler's own names are put in.)"""
    template = request.scope.get("path_template") or request.url.path
    handler = request.scope.get("route_handler")
    names = re.findall(r"{(\w+)", min(handler.paths)) if getattr(handler, "paths", None) else []
    if names and len(names) == template.count("{"):
        given = iter(names)
        template = re.sub(r"{[^}]*}", lambda _: "{" + next(given) + "}", template)
    return template
