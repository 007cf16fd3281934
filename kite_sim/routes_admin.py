"""The sim's own endpoints under ``/sim/``: fault injection and test controls (only with ``--admin``),
plus the always-on clock and health probes."""

from __future__ import annotations

import logging

from litestar import get, post
from litestar.exceptions import HTTPException

log = logging.getLogger("kite_sim.admin")


def handlers(sim) -> list:
    def admin_only() -> None:
        if not sim.admin:
            raise HTTPException(status_code=404, detail="admin API disabled (start the sim with --admin)")

    @get("/sim/faults")
    async def get_faults() -> dict:
        admin_only()
        return sim.faults.as_dict()

    @post("/sim/faults", status_code=200)
    async def set_faults(data: dict) -> dict:
        admin_only()
        try:
            sim.faults.update(data)
        except (KeyError, ValueError, TypeError) as e:
            raise HTTPException(status_code=400, detail=f"unknown or bad fault field: {e}") from None
        log.info("faults set: %s", data)
        return sim.faults.as_dict()

    @post("/sim/drop_ws", status_code=200)
    async def drop_ws() -> dict:
        admin_only()
        n = sim.hub.drop_all()
        log.info("dropped %d ticker connections", n)
        return {"dropped": n}

    @post("/sim/expire_sessions", status_code=200)
    async def expire_sessions() -> dict:
        admin_only()
        n = sim.accounts.expire_all()
        log.info("expired %d sessions", n)
        sim.changed()
        return {"expired": n}

    @post("/sim/price", status_code=200)
    async def pin_price(data: dict) -> dict:
        """Pin (or with null, release) an underlying's spot: {"underlying": "INFY", "price": 1500.0}."""
        admin_only()
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

    def clock_state() -> dict:
        c = sim.market.clock
        return {"now": c.stamp(), "epoch": c.epoch(), "speed": c.speed, "open": c.is_open(),
                "trading_day": c.today().isoformat()}

    @get("/sim/clock")
    async def clock() -> dict:
        return clock_state()

    @post("/sim/advance", status_code=200)
    async def advance(data: dict) -> dict:
        """Move the market clock ahead: {"seconds": 22500} is one whole session (the next trading day)."""
        admin_only()
        try:
            seconds = float(data["seconds"])
        except (KeyError, TypeError, ValueError):
            raise HTTPException(status_code=400, detail="seconds must be a number") from None
        if not 0 < seconds <= 30 * 86400:
            raise HTTPException(status_code=400, detail="seconds must be between 0 and 30 days")
        sim.market.clock.advance(seconds)
        log.info("clock advanced %g market seconds to %s", seconds, sim.market.clock.stamp())
        return clock_state()

    @get("/sim/health")
    async def health() -> dict:
        return {"ok": True, "connections": len(sim.hub.connections)}

    return [get_faults, set_faults, drop_ws, expire_sessions, pin_price, clock, advance, health]
