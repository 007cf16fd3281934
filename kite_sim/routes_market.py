"""Market data: the instrument dumps (CSV), quotes (full / ohlc / ltp), historical candles with Kite's
intervals and max-range rules, and the order and basket margin calculators."""

from __future__ import annotations

from datetime import datetime, timedelta

from litestar import Request, Response, get, post

from kite_sim import contract_note, portfolio
from kite_sim.envelope import json_list, ok
from kite_sim.errors import KiteError
from kite_sim.kite_api import KiteController
from kite_sim.sim import Sim
from shared.ist import IST

# interval -> (seconds, max days per request)
INTERVALS = {"minute": (60, 60), "3minute": (180, 100), "5minute": (300, 100), "10minute": (600, 100),
             "15minute": (900, 200), "30minute": (1800, 200), "60minute": (3600, 400), "day": (86400, 2000)}
EMPTY_LEVEL = {"price": 0, "quantity": 0, "orders": 0}


def depth_levels(side: list[tuple[float, int, int]]) -> list[dict]:
    """Five levels, as Kite always sends: the empty ones zero."""
    levels = [{"price": p, "quantity": qq, "orders": o} for p, qq, o in side[:5]]
    return levels + [dict(EMPTY_LEVEL) for _ in range(5 - len(levels))]


def parse_time(value: str, end: bool = False) -> datetime:
    value = value.strip()
    fmt = "%Y-%m-%d %H:%M:%S" if len(value) > 10 else "%Y-%m-%d"
    dt = datetime.strptime(value, fmt).replace(tzinfo=IST)
    if end and len(value) <= 10:
        dt += timedelta(hours=23, minutes=59, seconds=59)
    return dt


def quote_row(inst, q) -> dict:
    stamp = q.timestamp.strftime("%Y-%m-%d %H:%M:%S")
    return {
        "instrument_token": inst.instrument_token, "timestamp": stamp, "last_trade_time": stamp,
        "last_price": q.last_price, "last_quantity": q.last_quantity, "buy_quantity": q.buy_quantity,
        "sell_quantity": q.sell_quantity, "volume": q.volume, "average_price": q.average_price, "oi": q.oi,
        "oi_day_high": q.oi_day_high, "oi_day_low": q.oi_day_low, "net_change": round(q.last_price - q.close, 2),
        "lower_circuit_limit": q.lower_circuit, "upper_circuit_limit": q.upper_circuit,
        "ohlc": {"open": q.open, "high": q.high, "low": q.low, "close": q.close},
        "depth": {"buy": depth_levels(q.depth_buy), "sell": depth_levels(q.depth_sell)},
    }


def basket(orders: list[dict], final: float) -> dict:
    total = round(sum(o["total"] for o in orders), 2)

    def block(t: float) -> dict:
        return {**{k: 0 for k in ("span", "exposure", "option_premium", "additional", "bo", "cash", "var")},
                "pnl": {"realised": 0, "unrealised": 0}, "leverage": 1, "charges": costs,
                "total": t, "type": "", "tradingsymbol": "", "exchange": ""}

    costs = contract_note.summed([o["charges"] for o in orders])
    return {"initial": block(total), "final": block(final), "orders": orders, "charges": costs}


def instruments(request: Request, sim: Sim, limit: int) -> list:
    """The ``i`` query parameters Kite knows (unknown ones are left out, as Kite does)."""
    keys = request.query_params.getall("i", [])
    if not keys:
        raise KiteError("No instruments specified.")
    if len(keys) > limit:
        raise KiteError(f"Too many instruments. Maximum is {limit}.")
    return [(k, inst) for k in keys if (inst := sim.market.universe.find(k)) is not None]


class MarketController(KiteController):
    path = "/"

    @get("/instruments", media_type="text/csv")
    async def instruments_all(self, sim: Sim) -> Response:
        return Response(sim.market.universe.csv(None).encode(), media_type="text/csv")

    @get("/instruments/{exchange:str}", media_type="text/csv")
    async def instruments_exchange(self, sim: Sim, exchange: str) -> Response:
        return Response(sim.market.universe.csv(exchange).encode(), media_type="text/csv")

    @get("/quote")
    async def quote(self, request: Request, sim: Sim) -> Response:
        return ok({k: quote_row(inst, sim.market.quote(inst)) for k, inst in instruments(request, sim, 500)})

    @get("/quote/ohlc")
    async def quote_ohlc(self, request: Request, sim: Sim) -> Response:
        out = {}
        for key, inst in instruments(request, sim, 1000):
            q = sim.market.quote(inst)
            out[key] = {"instrument_token": inst.instrument_token, "last_price": q.last_price,
                        "ohlc": {"open": q.open, "high": q.high, "low": q.low, "close": q.close}}
        return ok(out)

    @get("/quote/ltp")
    async def quote_ltp(self, request: Request, sim: Sim) -> Response:
        return ok({k: {"instrument_token": inst.instrument_token, "last_price": sim.market.price(inst)}
                   for k, inst in instruments(request, sim, 1000)})

    @get("/instruments/historical/{token:int}/{interval:str}")
    async def historical(self, request: Request, sim: Sim, token: int, interval: str) -> Response:
        inst = sim.market.universe.by_token.get(token)
        if inst is None:
            raise KiteError("invalid token")
        if interval not in INTERVALS:
            raise KiteError("invalid interval")
        qp = request.query_params
        try:
            start, end = parse_time(qp.get("from", "")), parse_time(qp.get("to", ""), end=True)
        except ValueError:
            raise KiteError("invalid from/to: use yyyy-mm-dd hh:mm:ss") from None
        if end < start:
            raise KiteError("invalid from/to: `from` is after `to`")
        seconds, max_days = INTERVALS[interval]
        if (end - start) > timedelta(days=max_days):
            raise KiteError(f"interval exceeds max limit: {max_days} days")
        if qp.get("continuous") in ("1", "true") and inst.instrument_type != "FUT":
            raise KiteError("invalid continuous: continuous data is only for futures")
        with_oi = qp.get("oi") in ("1", "true")
        sim.history_calls.append({"token": token, "interval": interval, "from": int(start.timestamp()),
                                  "to": int(end.timestamp())})
        return ok({"candles": sim.market.candles(inst, start, end, seconds, with_oi)})

    @post("/margins/orders", status_code=200)
    async def margins_orders(self, request: Request, sim: Sim) -> Response:
        body = await json_list(request)
        with sim.market.clock.frozen():
            return ok([portfolio.order_margin(sim.market, o) for o in body])

    @post("/charges/orders", status_code=200)
    async def charges_orders(self, request: Request, sim: Sim) -> Response:
        """Kite's virtual contract note: the charges of executed orders, from the shared charges table."""
        return ok(contract_note.contract_note(sim.market, await json_list(request)))

    @post("/margins/basket", status_code=200)
    async def margins_basket(self, request: Request, sim: Sim, user_id: str) -> Response:
        consider = request.query_params.get("consider_positions", "false").lower() == "true"
        body = await json_list(request)
        with sim.market.clock.frozen():  # each order alone and the basket together priced at one moment
            orders, final = portfolio.basket_margin(sim.market, sim.broker.account(user_id), body, consider)
        return ok(basket(orders, final))
