"""Orders (place / modify / cancel, the order book and history, trades) and the portfolio (positions,
conversion, holdings) of the authenticated user."""

from __future__ import annotations

import logging

from litestar import Request, Response, delete, get, post, put

from kite_sim import portfolio
from kite_sim.depository import isin_of
from kite_sim.envelope import form, ok
from kite_sim.errors import KiteError
from kite_sim.kite_api import KiteController
from kite_sim.orders import PositionBook
from kite_sim.sim import Sim

log = logging.getLogger("kite_sim.trading")


class OrdersController(KiteController):
    path = "/"

    @post("/orders/{variety:str}", status_code=200)
    async def place(self, request: Request, sim: Sim, user_id: str, variety: str) -> Response:
        return ok({"order_id": sim.broker.place(user_id, variety, await form(request)).order_id})

    @put("/orders/{variety:str}/{order_id:str}")
    async def modify(self, request: Request, sim: Sim, user_id: str, variety: str, order_id: str) -> Response:
        return ok({"order_id": sim.broker.modify(user_id, variety, order_id, await form(request)).order_id})

    @delete("/orders/{variety:str}/{order_id:str}", status_code=200)
    async def cancel(self, sim: Sim, user_id: str, variety: str, order_id: str) -> Response:
        return ok({"order_id": sim.broker.cancel(user_id, variety, order_id).order_id})

    @get("/orders")
    async def orders(self, sim: Sim, user_id: str) -> Response:
        return ok([o.as_kite(user_id) for o in sim.broker.account(user_id).orders.values()])

    @get("/orders/{order_id:str}")
    async def history(self, sim: Sim, user_id: str, order_id: str) -> Response:
        return ok(list(sim.broker.order(user_id, order_id).history))

    @get("/orders/{order_id:str}/trades")
    async def order_trades(self, sim: Sim, user_id: str, order_id: str) -> Response:
        sim.broker.order(user_id, order_id)
        return ok([t.as_kite() for t in sim.broker.account(user_id).trades if t.order.order_id == order_id])

    @get("/trades")
    async def trades(self, sim: Sim, user_id: str) -> Response:
        return ok([t.as_kite() for t in sim.broker.account(user_id).trades])


class PortfolioController(KiteController):
    path = "/portfolio"

    @get("/positions")
    async def positions(self, sim: Sim, user_id: str) -> Response:
        return ok(portfolio.positions(sim.market, sim.broker.account(user_id)))

    @put("/positions")
    async def convert(self, request: Request, sim: Sim, user_id: str) -> Response:
        f = await form(request)
        inst = sim.market.universe.find(f"{f.get('exchange')}:{f.get('tradingsymbol')}")
        acc = sim.broker.account(user_id)
        key = (inst.instrument_token, f.get("old_product")) if inst else None
        if key is None or key not in acc.positions:
            raise KiteError("No open position to convert.")
        new = f.get("new_product")
        if new not in ("CNC", "MIS", "NRML") or new == f.get("old_product"):
            raise KiteError("Invalid `new_product`.")
        if new == "CNC" and inst.instrument_type != "EQ":
            raise KiteError("CNC is for equity delivery only; use NRML or MIS.")
        src = acc.positions.pop(key)
        dst = acc.positions.setdefault((inst.instrument_token, new), PositionBook())
        for name in ("buy_quantity", "buy_value", "sell_quantity", "sell_value", "overnight_quantity"):
            setattr(dst, name, getattr(dst, name) + getattr(src, name))
        dst.overnight_price = dst.overnight_price or src.overnight_price
        dst.overnight_average = dst.overnight_average or src.overnight_average
        log.info("position %s converted %s -> %s", inst.tradingsymbol, f.get("old_product"), new,
                 extra={"user_id": user_id})
        sim.changed()
        return ok(True)

    @get("/holdings")
    async def holdings(self, sim: Sim, user_id: str) -> Response:
        return ok(portfolio.holdings(sim.market, sim.broker.account(user_id)))

    @post("/holdings/authorise", status_code=200)
    async def authorise_holdings(self, request: Request, sim: Sim, user_id: str) -> Response:
        """Start a depository (eDIS) authorisation: repeated ``isin`` + ``quantity`` pairs, or none for all."""
        data = await request.form()
        isins, quantities = data.getall("isin", []), data.getall("quantity", [])
        acc = sim.broker.account(user_id)
        by_isin = {isin_of(token): token for token in acc.holdings}
        if len(isins) != len(quantities) or any(i not in by_isin for i in isins):
            raise KiteError("Invalid `isin`.")
        try:
            wanted = {by_isin[i]: int(q) for i, q in zip(isins, quantities, strict=True)} if isins else None
        except ValueError:
            raise KiteError("Invalid `quantity`.") from None
        if wanted is not None and any(q <= 0 for q in wanted.values()):
            raise KiteError("Invalid `quantity`.")
        acc.depository.roll(sim.market.clock.today().isoformat())
        request_id = acc.depository.request(wanted)
        log.info("holdings authorisation requested for %s", "all holdings" if wanted is None else len(wanted),
                 extra={"user_id": user_id})
        sim.changed()
        return ok({"request_id": request_id})
