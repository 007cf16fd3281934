"""Orders (place / modify / cancel, the order book and history, trades) and the portfolio (positions,
conversion, holdings) of the authenticated user."""

from __future__ import annotations

import logging

from litestar import Request, Response, delete, get, post, put

from kite_sim import portfolio
from kite_sim.envelope import form
from kite_sim.errors import KiteError

log = logging.getLogger("kite_sim.trading")


def handlers(sim) -> list:
    broker = sim.broker

    @post("/orders/{variety:str}", status_code=200)
    async def place_order(request: Request, variety: str) -> Response:
        f = await form(request)
        return await sim.guarded(request, lambda uid: {"order_id": broker.place(uid, variety, f).order_id})

    @put("/orders/{variety:str}/{order_id:str}")
    async def modify_order(request: Request, variety: str, order_id: str) -> Response:
        f = await form(request)
        return await sim.guarded(request, lambda uid: {"order_id": broker.modify(uid, variety, order_id, f).order_id})

    @delete("/orders/{variety:str}/{order_id:str}", status_code=200)
    async def cancel_order(request: Request, variety: str, order_id: str) -> Response:
        return await sim.guarded(request, lambda uid: {"order_id": broker.cancel(uid, variety, order_id).order_id})

    @get("/orders")
    async def orders(request: Request) -> Response:
        return await sim.guarded(request, lambda uid: [o.as_kite(uid) for o in broker.account(uid).orders.values()])

    @get("/orders/{order_id:str}")
    async def order_history(request: Request, order_id: str) -> Response:
        return await sim.guarded(request, lambda uid: list(broker._get(uid, order_id).history))

    @get("/orders/{order_id:str}/trades")
    async def order_trades(request: Request, order_id: str) -> Response:
        def fn(uid: str):
            broker._get(uid, order_id)
            return [t.as_kite() for t in broker.account(uid).trades if t.order.order_id == order_id]

        return await sim.guarded(request, fn)

    @get("/trades")
    async def trades(request: Request) -> Response:
        return await sim.guarded(request, lambda uid: [t.as_kite() for t in broker.account(uid).trades])

    @get("/portfolio/positions")
    async def positions(request: Request) -> Response:
        return await sim.guarded(request, lambda uid: portfolio.positions(sim.market, broker.account(uid)))

    @put("/portfolio/positions")
    async def convert_position(request: Request) -> Response:
        f = await form(request)

        def fn(uid: str):
            inst = sim.market.universe.find(f"{f.get('exchange')}:{f.get('tradingsymbol')}")
            acc = broker.account(uid)
            key = (inst.instrument_token, f.get("old_product")) if inst else None
            if key is None or key not in acc.positions:
                raise KiteError("No open position to convert.")
            new = f.get("new_product")
            if new not in ("CNC", "MIS", "NRML") or new == f.get("old_product"):
                raise KiteError("Invalid `new_product`.")
            if new == "CNC" and inst.instrument_type != "EQ":
                raise KiteError("CNC is for equity delivery only; use NRML or MIS.")
            src = acc.positions.pop(key)
            dst = acc.positions.setdefault((inst.instrument_token, new), type(src)())
            for name in ("buy_quantity", "buy_value", "sell_quantity", "sell_value", "overnight_quantity"):
                setattr(dst, name, getattr(dst, name) + getattr(src, name))
            dst.overnight_price = dst.overnight_price or src.overnight_price
            dst.overnight_average = dst.overnight_average or src.overnight_average
            log.info("position %s converted %s -> %s", inst.tradingsymbol, f.get("old_product"), new,
                     extra={"user_id": uid})
            sim.changed()
            return True

        return await sim.guarded(request, fn)

    @get("/portfolio/holdings")
    async def holdings(request: Request) -> Response:
        return await sim.guarded(request, lambda uid: portfolio.holdings(sim.market, broker.account(uid)))

    return [place_order, modify_order, cancel_order, orders, order_history, order_trades, trades, positions,
            convert_position, holdings]
