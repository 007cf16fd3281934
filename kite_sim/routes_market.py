"""Market data: the instrument dumps (CSV), quotes (full / ohlc / ltp), historical candles with Kite's
intervals and max-range rules, and the order and basket margin calculators."""

from __future__ import annotations

from datetime import datetime, timedelta

from litestar import Request, Response, get, post

from kite_sim import portfolio
from kite_sim.clock import IST
from kite_sim.envelope import error_response, json_list
from kite_sim.errors import KiteError

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


def basket(orders: list[dict], body: list[dict]) -> dict:
    total = round(sum(o["total"] for o in orders), 2)
    hedged = any(o.get("transaction_type") == "BUY" for o in body) and any(
        o.get("transaction_type") == "SELL" for o in body)
    final = round(total * (0.35 if hedged else 1.0), 2)  # spread benefit

    def block(t: float) -> dict:
        return {**{k: 0 for k in ("span", "exposure", "option_premium", "additional", "bo", "cash", "var")},
                "pnl": {"realised": 0, "unrealised": 0}, "leverage": 1, "charges": dict(portfolio.CHARGES),
                "total": t, "type": "", "tradingsymbol": "", "exchange": ""}

    return {"initial": block(total), "final": block(final), "orders": orders, "charges": dict(portfolio.CHARGES)}


def handlers(sim) -> list:
    market = sim.market

    async def dump(request: Request, exchange: str | None) -> Response:
        try:
            sim.auth(request)
        except KiteError as e:
            return error_response(e)
        return Response(market.universe.csv(exchange).encode(), media_type="text/csv")

    @get("/instruments", media_type="text/csv")
    async def instruments_all(request: Request) -> Response:
        return await dump(request, None)

    @get("/instruments/{exchange:str}", media_type="text/csv")
    async def instruments_exchange(request: Request, exchange: str) -> Response:
        return await dump(request, exchange)

    def instruments(request: Request, limit: int):
        keys = request.query_params.getall("i", [])
        if not keys:
            raise KiteError("No instruments specified.")
        if len(keys) > limit:
            raise KiteError(f"Too many instruments. Maximum is {limit}.")
        return [(k, inst) for k in keys if (inst := market.universe.find(k)) is not None]  # Kite omits unknowns

    @get("/quote")
    async def quote(request: Request) -> Response:
        return await sim.guarded(request, lambda uid: {
            k: quote_row(inst, market.quote(inst)) for k, inst in instruments(request, 500)})

    @get("/quote/ohlc")
    async def quote_ohlc(request: Request) -> Response:
        def fn(uid: str):
            out = {}
            for key, inst in instruments(request, 1000):
                q = market.quote(inst)
                out[key] = {"instrument_token": inst.instrument_token, "last_price": q.last_price,
                            "ohlc": {"open": q.open, "high": q.high, "low": q.low, "close": q.close}}
            return out

        return await sim.guarded(request, fn)

    @get("/quote/ltp")
    async def quote_ltp(request: Request) -> Response:
        return await sim.guarded(request, lambda uid: {
            k: {"instrument_token": inst.instrument_token, "last_price": market.price(inst)}
            for k, inst in instruments(request, 1000)})

    @get("/instruments/historical/{token:int}/{interval:str}")
    async def historical(request: Request, token: int, interval: str) -> Response:
        def fn(uid: str):
            inst = market.universe.by_token.get(token)
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
            return {"candles": market.candles(inst, start, end, seconds, with_oi)}

        return await sim.guarded(request, fn)

    @post("/margins/orders", status_code=200)
    async def margins_orders(request: Request) -> Response:
        async def fn(uid: str):
            return [portfolio.order_margin(market, o) for o in await json_list(request)]

        return await sim.guarded(request, fn)

    @post("/margins/basket", status_code=200)
    async def margins_basket(request: Request) -> Response:
        async def fn(uid: str):
            body = await json_list(request)
            return basket([portfolio.order_margin(market, o) for o in body], body)

        return await sim.guarded(request, fn)

    return [instruments_all, instruments_exchange, quote, quote_ohlc, quote_ltp, historical, margins_orders,
            margins_basket]
