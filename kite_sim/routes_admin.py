"""The sim's own endpoints under ``/sim/``: fault injection and test controls (only with ``--admin``),
plus the always-on clock and health probes."""

from __future__ import annotations

import logging
from collections import Counter

from litestar import Controller, get, post
from litestar.connection import ASGIConnection
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.handlers.base import BaseRouteHandler

from kite_sim.kite_api import provide_sim, sim_of
from kite_sim.sim import Sim

log = logging.getLogger("kite_sim.admin")


def admin_enabled(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    if not sim_of(connection).admin:
        raise HTTPException(status_code=404, detail="admin API disabled (start the sim with --admin)")


def clock_state(sim: Sim) -> dict:
    c = sim.market.clock
    return {"now": c.stamp(), "epoch": c.epoch(), "speed": c.speed, "open": c.is_open(),
            "trading_day": c.today().isoformat(),
            "listed_day": sim.market.universe.today.isoformat()}  # the day whose contracts the dumps list


class ProbeController(Controller):
    """Always on: the sim's clock and health."""

    path = "/sim"
    dependencies = {"sim": Provide(provide_sim, sync_to_thread=False)}

    @get("/clock")
    async def clock(self, sim: Sim) -> dict:
        return clock_state(sim)

    @get("/health")
    async def health(self, sim: Sim) -> dict:
        return {"ok": True, "connections": len(sim.hub.connections)}


class AdminController(Controller):
    """Faults and test controls: 404 unless the sim runs with ``--admin``."""

    path = "/sim"
    guards = [admin_enabled]
    dependencies = {"sim": Provide(provide_sim, sync_to_thread=False)}

    @get("/faults")
    async def get_faults(self, sim: Sim) -> dict:
        return sim.faults.as_dict()

    @get("/history_calls")
    async def history_calls(self, sim: Sim) -> dict:
        """The historical-candle requests served since the start or the last reset (the last 1,000):
        token, interval and the span asked, epoch seconds."""
        return {"calls": list(sim.history_calls)}

    @get("/requests")
    async def requests(self, sim: Sim, api_key: str = "") -> dict:
        """The Kite requests that arrived since the start or the last reset, by method and route
        (``{"GET /orders/{order_id}": 12, ...}``), the ones answered 429 included; ``?api_key=``: that app's only."""
        counts: Counter[str] = Counter()
        for (key, route), n in sim.requests.items():
            if not api_key or key == api_key:
                counts[route] += n
        return dict(counts)

    @post("/faults", status_code=200)
    async def set_faults(self, sim: Sim, data: dict) -> dict:
        try:
            sim.faults.update(data)
        except (KeyError, ValueError, TypeError) as e:
            raise HTTPException(status_code=400, detail=f"unknown or bad fault field: {e}") from None
        log.info("faults set: %s", data)
        return sim.faults.as_dict()

    @post("/drop_ws", status_code=200)
    async def drop_ws(self, sim: Sim) -> dict:
        n = sim.hub.drop_all()
        log.info("dropped %d ticker connections", n)
        return {"dropped": n}

    @post("/expire_sessions", status_code=200)
    async def expire_sessions(self, sim: Sim) -> dict:
        n = sim.accounts.expire_all()
        log.info("expired %d sessions", n)
        sim.changed()
        return {"expired": n}

    @post("/price", status_code=200)
    async def pin_price(self, sim: Sim, data: dict) -> dict:
        """Pin (or with null, release) an underlying's spot: {"underlying": "INFY", "price": 1500.0}."""
        u = data.get("underlying")
        if u not in sim.market.universe.vol:
            raise HTTPException(status_code=400, detail="unknown underlying")
        try:
            if data.get("price") is None:
                sim.market.overrides.pop(u, None)
            else:
                sim.market.overrides[u] = float(data["price"])
        except (TypeError, ValueError):
            raise HTTPException(status_code=400, detail="price must be a number or null") from None
        log.info("price of %s pinned to %s", u, data.get("price"))
        return {"underlying": u, "price": sim.market.spot(u)}

    @post("/accounts", status_code=200)
    async def account_settings(self, sim: Sim, data: dict) -> dict:
        """An account's settings: {"user_id": "DEMO01", "edis": true} (no DDPI: delivery sells need eDIS)."""
        user = data.get("user_id")
        if user not in sim.accounts.users:
            raise HTTPException(status_code=400, detail="unknown user_id")
        if not isinstance(data.get("edis"), bool):
            raise HTTPException(status_code=400, detail="edis must be true or false")
        dep = sim.broker.account(user).depository
        dep.edis = data["edis"]
        log.info("account %s: eDIS authorisation %s", user, "required" if dep.edis else "not required (DDPI)")
        sim.changed()
        return {"user_id": user, "edis": dep.edis}

    @post("/accounts/reset", status_code=200)
    async def reset_account(self, sim: Sim, data: dict) -> dict:
        """Open an account afresh, as if it had never traded: {"user_id": "DEMO01"} — the starting funds
        and holdings, no orders, trades, positions or GTTs; its eDIS setting and sessions stay, order and
        trade ids keep counting. Tests sharing one sim start each stack on a clean account."""
        user = data.get("user_id")
        if user not in sim.accounts.users:
            raise HTTPException(status_code=400, detail="unknown user_id")
        old = sim.open_account(user)
        dropped = len(old.orders) if old else 0
        log.info("account %s reset (%d orders dropped)", user, dropped)
        return {"user_id": user, "orders_dropped": dropped}

    @post("/reset", status_code=200)
    async def reset(self, sim: Sim) -> dict:
        """The sim as it started, but the clock and the market run on: every account afresh, faults off,
        pinned prices released (tests sharing a sim start each module on what it would see alone)."""
        sim.reset()
        log.info("reset: accounts opened afresh, faults off, prices released")
        return {"faults": sim.faults.as_dict(), "clock": clock_state(sim)}

    @post("/advance", status_code=200)
    async def advance(self, sim: Sim, data: dict) -> dict:
        """Move the market clock ahead: {"seconds": 22500} is one whole session (the next trading day)."""
        try:
            seconds = float(data["seconds"])
        except (KeyError, TypeError, ValueError):
            raise HTTPException(status_code=400, detail="seconds must be a number") from None
        if not 0 < seconds <= 30 * 86400:
            raise HTTPException(status_code=400, detail="seconds must be between 0 and 30 days")
        sim.market.clock.advance(seconds)
        log.info("clock advanced %g market seconds to %s", seconds, sim.market.clock.stamp())
        return clock_state(sim)
