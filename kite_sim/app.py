"""kite_sim's HTTP + WebSocket surface: Kite Connect v3's routes, envelope, error types and codes.

Served at the host root (pykiteconnect discards any path prefix of ``root``); form-encoded bodies
except the JSON margin endpoints; ``Content-Type`` exactly as Kite sends it, because the official
client picks its parser from that header alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
from datetime import datetime, timedelta
from urllib.parse import urlencode

from litestar import Litestar, MediaType, Request, Response, WebSocket, delete, get, post, put, websocket
from litestar.exceptions import HTTPException

from kite_sim.accounts import Accounts
from kite_sim.broker import Broker, OrderError, paise
from kite_sim.clock import IST
from kite_sim.faults import Faults
from kite_sim.market import Market
from kite_sim.ratelimit import RateLimiter, endpoint_class
from kite_sim.ticker import MAX_CONNECTIONS, Connection, TickerHub, serve_connection

log = logging.getLogger("kite_sim.app")

INTERVALS = {"minute": (60, 60), "3minute": (180, 100), "5minute": (300, 100), "10minute": (600, 100),
             "15minute": (900, 200), "30minute": (1800, 200), "60minute": (3600, 400), "day": (86400, 2000)}


class KiteError(Exception):
    def __init__(self, message: str, error_type: str = "InputException", status: int = 400) -> None:
        super().__init__(message)
        self.message, self.error_type, self.status = message, error_type, status


def ok(data) -> Response:
    return Response(json.dumps({"status": "success", "data": data}).encode(), media_type=MediaType.JSON)


def error_response(e: KiteError | OrderError) -> Response:
    body = {"status": "error", "message": e.message, "data": None, "error_type": e.error_type}
    return Response(json.dumps(body).encode(), media_type=MediaType.JSON, status_code=e.status)


class Sim:
    """The running sim's state, shared by every handler."""

    def __init__(self, accounts: Accounts, market: Market, faults: Faults, admin: bool, rate_limits: bool = True,
                 tick_interval: float = 0.25) -> None:
        self.accounts = accounts
        self.market = market
        self.faults = faults
        self.admin = admin
        self.hub = TickerHub(market)
        self.broker = Broker(market, faults, self.hub.order_update)
        self.limiter = RateLimiter(rate_limits)
        self.tick_interval = tick_interval
        for user in accounts.users.values():
            acc = self.broker.account(user.user_id, user.funds)
            for sym, (qty, avg) in user.holdings.items():
                inst = market.universe.by_key.get(f"NSE:{sym}")
                if inst:
                    acc.holdings[inst.instrument_token] = (qty, paise(avg))

    async def run(self) -> None:
        """The market heartbeat: match resting orders and push ticks to every connection."""
        last_drop = asyncio.get_running_loop().time()
        while True:
            await asyncio.sleep(self.tick_interval)
            try:
                self.broker.match_all()
                self.hub.broadcast(malformed=self.faults.take_malformed())
                now = asyncio.get_running_loop().time()
                if self.faults.drop_ws_every and now - last_drop >= self.faults.drop_ws_every:
                    last_drop = now
                    self.hub.drop_all()
            except Exception:  # noqa: BLE001 - the market must keep running
                log.exception("market loop error")

    # ---- request helpers ----------------------------------------------------------------------

    def auth(self, request: Request) -> str:
        header = request.headers.get("authorization", "")
        scheme, _, cred = header.partition(" ")
        api_key, _, token = cred.partition(":")
        info = self.accounts.check(api_key, token) if scheme.lower() == "token" else None
        if info is None:
            raise KiteError("Incorrect `api_key` or `access_token`.", "TokenException", 403)
        if not self.limiter.allow(api_key, endpoint_class(request.method, request.url.path)) or \
                self.faults.take_rate_limit():
            raise KiteError("Too many requests", "NetworkException", 429)
        return info.user_id


def build_app(sim: Sim) -> Litestar:
    async def guarded(request: Request, fn) -> Response:
        if sim.faults.latency_ms:
            await asyncio.sleep(sim.faults.latency_ms / 1000)
        try:
            user_id = sim.auth(request)
            return ok(await fn(user_id))
        except (KiteError, OrderError) as e:
            return error_response(e)

    async def form(request: Request) -> dict:
        data = await request.form()
        return {k: data.get(k) for k in data.keys()}

    # ---- login and session --------------------------------------------------------------------

    @get("/connect/login", media_type=MediaType.HTML)
    async def login_page(api_key: str = "", v: str = "3", redirect_params: str = "") -> Response:
        if api_key not in sim.accounts.apps:
            return Response("<h1>Invalid api_key</h1>", media_type=MediaType.HTML, status_code=400)
        page = f"""<!doctype html><html><head><title>Kite (sim) login</title>
<meta name="viewport" content="width=device-width,initial-scale=1"></head>
<body style="font-family:sans-serif;max-width:360px;margin:60px auto">
<h2>Login to Kite <small>(kite_sim)</small></h2>
<form method="post" action="/connect/login">
<input type="hidden" name="api_key" value="{html.escape(api_key)}">
<input type="hidden" name="redirect_params" value="{html.escape(redirect_params)}">
<p><label>User ID <input name="user_id" id="userid" autocomplete="username"></label></p>
<p><label>Password <input name="password" id="password" type="password"></label></p>
<p><button type="submit" id="login">Login</button></p></form></body></html>"""
        return Response(page, media_type=MediaType.HTML)

    @post("/connect/login", status_code=302)
    async def login_submit(request: Request) -> Response:
        f = await form(request)
        api_key = f.get("api_key") or ""
        token = sim.accounts.login(api_key, f.get("user_id") or "", f.get("password") or "")
        if token is None:
            return Response("<h1>Invalid user id or password</h1>", media_type=MediaType.HTML, status_code=403)
        params = {"request_token": token, "action": "login", "type": "login", "status": "success"}
        url = sim.accounts.apps[api_key].redirect_url
        extra = f.get("redirect_params") or ""
        location = f"{url}{'&' if '?' in url else '?'}{urlencode(params)}" + (f"&{extra}" if extra else "")
        return Response(b"", status_code=302, headers={"Location": location})

    @post("/session/token", status_code=200)
    async def session_token(request: Request) -> Response:
        f = await form(request)
        result = sim.accounts.exchange(f.get("api_key") or "", f.get("request_token") or "", f.get("checksum") or "")
        if isinstance(result, str):
            return error_response(KiteError(result, "TokenException", 403))
        token, info = result
        user = sim.accounts.users[info.user_id]
        return ok({
            "user_type": "individual", "email": user.email, "user_name": user.name,
            "user_shortname": user.name.split()[0], "broker": "ZERODHA",
            "exchanges": ["NSE", "NFO", "BFO", "BSE", "MF"], "products": ["CNC", "NRML", "MIS", "BO", "CO"],
            "order_types": ["MARKET", "LIMIT", "SL", "SL-M"], "avatar_url": None, "user_id": user.user_id,
            "api_key": info.api_key, "access_token": token, "public_token": info.public_token, "enctoken": "",
            "refresh_token": "", "silo": "", "login_time": info.login_time, "meta": {"demat_consent": "consent"},
        })

    @delete("/session/token", status_code=200)
    async def session_logout(api_key: str = "", access_token: str = "") -> Response:
        if not sim.accounts.invalidate(api_key, access_token):
            return error_response(KiteError("Invalid session.", "TokenException", 403))
        return ok(True)

    # ---- user ---------------------------------------------------------------------------------

    def profile(user_id: str) -> dict:
        u = sim.accounts.users[user_id]
        return {"user_id": u.user_id, "user_type": "individual", "email": u.email, "user_name": u.name,
                "user_shortname": u.name.split()[0], "broker": "ZERODHA",
                "exchanges": ["NSE", "NFO", "BFO", "BSE", "MF"], "products": ["CNC", "NRML", "MIS", "BO", "CO"],
                "order_types": ["MARKET", "LIMIT", "SL", "SL-M"], "avatar_url": None,
                "meta": {"demat_consent": "consent"}}

    @get("/user/profile")
    async def user_profile(request: Request) -> Response:
        return await guarded(request, lambda uid: _async(profile(uid)))

    @get("/user/margins")
    async def user_margins(request: Request) -> Response:
        return await guarded(request, lambda uid: _async(sim.broker.margins(uid)))

    @get("/user/margins/{segment:str}")
    async def user_margins_segment(request: Request, segment: str) -> Response:
        async def fn(uid: str):
            if segment not in ("equity", "commodity"):
                raise KiteError("Invalid segment.")
            return sim.broker.margins(uid)[segment]

        return await guarded(request, fn)

    # ---- orders -------------------------------------------------------------------------------

    @post("/orders/{variety:str}", status_code=200)
    async def place_order(request: Request, variety: str) -> Response:
        f = await form(request)
        return await guarded(request, lambda uid: _async({"order_id": sim.broker.place(uid, variety, f).order_id}))

    @put("/orders/{variety:str}/{order_id:str}")
    async def modify_order(request: Request, variety: str, order_id: str) -> Response:
        f = await form(request)
        return await guarded(
            request, lambda uid: _async({"order_id": sim.broker.modify(uid, variety, order_id, f).order_id}))

    @delete("/orders/{variety:str}/{order_id:str}", status_code=200)
    async def cancel_order(request: Request, variety: str, order_id: str) -> Response:
        return await guarded(
            request, lambda uid: _async({"order_id": sim.broker.cancel(uid, variety, order_id).order_id}))

    @get("/orders")
    async def orders(request: Request) -> Response:
        return await guarded(request, lambda uid: _async(
            [o.as_kite(uid) for o in sim.broker.account(uid).orders.values()]))

    @get("/orders/{order_id:str}")
    async def order_history(request: Request, order_id: str) -> Response:
        return await guarded(request, lambda uid: _async(list(sim.broker._get(uid, order_id).history)))

    @get("/orders/{order_id:str}/trades")
    async def order_trades(request: Request, order_id: str) -> Response:
        async def fn(uid: str):
            sim.broker._get(uid, order_id)
            return [t.as_kite() for t in sim.broker.account(uid).trades if t.order.order_id == order_id]

        return await guarded(request, fn)

    @get("/trades")
    async def trades(request: Request) -> Response:
        return await guarded(request, lambda uid: _async([t.as_kite() for t in sim.broker.account(uid).trades]))

    # ---- portfolio ----------------------------------------------------------------------------

    @get("/portfolio/positions")
    async def positions(request: Request) -> Response:
        return await guarded(request, lambda uid: _async(sim.broker.positions(uid)))

    @put("/portfolio/positions")
    async def convert_position(request: Request) -> Response:
        f = await form(request)

        async def fn(uid: str):
            inst = sim.market.universe.find(f"{f.get('exchange')}:{f.get('tradingsymbol')}")
            acc = sim.broker.account(uid)
            key = (inst.instrument_token, f.get("old_product")) if inst else None
            if key is None or key not in acc.positions:
                raise KiteError("No open position to convert.")
            if f.get("new_product") not in ("CNC", "MIS", "NRML"):
                raise KiteError("Invalid `new_product`.")
            acc.positions[(inst.instrument_token, f["new_product"])] = acc.positions.pop(key)
            return True

        return await guarded(request, fn)

    @get("/portfolio/holdings")
    async def holdings(request: Request) -> Response:
        return await guarded(request, lambda uid: _async(sim.broker.holdings(uid)))

    # ---- market data --------------------------------------------------------------------------

    @get("/instruments", media_type="text/csv")
    async def instruments_all(request: Request) -> Response:
        return await _csv(request, None)

    @get("/instruments/{exchange:str}", media_type="text/csv")
    async def instruments_exchange(request: Request, exchange: str) -> Response:
        return await _csv(request, exchange)

    async def _csv(request: Request, exchange: str | None) -> Response:
        try:
            sim.auth(request)
        except KiteError as e:
            return error_response(e)
        return Response(sim.market.universe.csv(exchange).encode(), media_type="text/csv")

    def _instruments(request: Request, limit: int):
        keys = request.query_params.getall("i", [])
        if not keys:
            raise KiteError("No instruments specified.")
        if len(keys) > limit:
            raise KiteError(f"Too many instruments. Maximum is {limit}.")
        return [(k, sim.market.universe.find(k)) for k in keys]

    @get("/quote")
    async def quote(request: Request) -> Response:
        async def fn(uid: str):
            out = {}
            for key, inst in _instruments(request, 500):
                if inst is None:
                    continue  # Kite silently omits unknown keys
                q = sim.market.quote(inst)
                out[key] = {
                    "instrument_token": inst.instrument_token, "timestamp": q.timestamp.strftime("%Y-%m-%d %H:%M:%S"),
                    "last_trade_time": q.timestamp.strftime("%Y-%m-%d %H:%M:%S"), "last_price": q.last_price,
                    "last_quantity": q.last_quantity, "buy_quantity": q.buy_quantity, "sell_quantity": q.sell_quantity,
                    "volume": q.volume, "average_price": q.average_price, "oi": q.oi, "oi_day_high": q.oi_day_high,
                    "oi_day_low": q.oi_day_low, "net_change": round(q.last_price - q.close, 2),
                    "lower_circuit_limit": q.lower_circuit, "upper_circuit_limit": q.upper_circuit,
                    "ohlc": {"open": q.open, "high": q.high, "low": q.low, "close": q.close},
                    "depth": {"buy": [{"price": p, "quantity": qq, "orders": o} for p, qq, o in q.depth_buy]
                              or [{"price": 0, "quantity": 0, "orders": 0}] * 5,
                              "sell": [{"price": p, "quantity": qq, "orders": o} for p, qq, o in q.depth_sell]
                              or [{"price": 0, "quantity": 0, "orders": 0}] * 5},
                }
            return out

        return await guarded(request, fn)

    @get("/quote/ohlc")
    async def quote_ohlc(request: Request) -> Response:
        async def fn(uid: str):
            out = {}
            for key, inst in _instruments(request, 1000):
                if inst is not None:
                    q = sim.market.quote(inst)
                    out[key] = {"instrument_token": inst.instrument_token, "last_price": q.last_price,
                                "ohlc": {"open": q.open, "high": q.high, "low": q.low, "close": q.close}}
            return out

        return await guarded(request, fn)

    @get("/quote/ltp")
    async def quote_ltp(request: Request) -> Response:
        async def fn(uid: str):
            return {key: {"instrument_token": inst.instrument_token, "last_price": sim.market.price(inst)}
                    for key, inst in _instruments(request, 1000) if inst is not None}

        return await guarded(request, fn)

    @get("/instruments/historical/{token:int}/{interval:str}")
    async def historical(request: Request, token: int, interval: str) -> Response:
        async def fn(uid: str):
            inst = sim.market.universe.by_token.get(token)
            if inst is None:
                raise KiteError("invalid token")
            if interval not in INTERVALS:
                raise KiteError("invalid interval")
            qp = request.query_params
            try:
                start, end = _parse_time(qp.get("from", "")), _parse_time(qp.get("to", ""), end=True)
            except ValueError:
                raise KiteError("invalid from/to: use yyyy-mm-dd hh:mm:ss") from None
            if end < start:
                raise KiteError("invalid from/to: `from` is after `to`")
            seconds, max_days = INTERVALS[interval]
            if (end - start) > timedelta(days=max_days):
                raise KiteError(f"interval exceeds max limit: {max_days} days")
            with_oi = qp.get("oi") in ("1", "true")
            return {"candles": sim.market.candles(inst, start, end, seconds, with_oi)}

        return await guarded(request, fn)

    @post("/margins/orders", status_code=200)
    async def margins_orders(request: Request) -> Response:
        body = await _json_list(request)
        return await guarded(request, lambda uid: _async([sim.broker.order_margin(uid, o) for o in body]))

    @post("/margins/basket", status_code=200)
    async def margins_basket(request: Request) -> Response:
        body = await _json_list(request)

        async def fn(uid: str):
            orders = [sim.broker.order_margin(uid, o) for o in body]
            total = round(sum(o["total"] for o in orders), 2)
            hedged = any(o.get("transaction_type") == "BUY" for o in body) and any(
                o.get("transaction_type") == "SELL" for o in body)
            final = round(total * (0.35 if hedged else 1.0), 2)  # spread benefit
            block = lambda t: {**{k: 0 for k in ("span", "exposure", "option_premium", "additional", "bo", "cash",  # noqa: E731
                                                  "var")}, "pnl": {"realised": 0, "unrealised": 0}, "leverage": 1,
                               "charges": orders[0]["charges"] if orders else {}, "total": t, "type": "", "tradingsymbol": "",
                               "exchange": ""}
            return {"initial": block(total), "final": block(final), "orders": orders,
                    "charges": orders[0]["charges"] if orders else {}}

        return await guarded(request, fn)

    async def _json_list(request: Request) -> list[dict]:
        try:
            body = json.loads(await request.body() or b"[]")
        except ValueError:
            body = None
        if not isinstance(body, list):
            raise HTTPException(status_code=400, detail="expected a JSON array of orders")
        return body

    # ---- ticker -------------------------------------------------------------------------------

    async def ticker(socket: WebSocket) -> None:
        api_key = socket.query_params.get("api_key", "")
        info = sim.accounts.check(api_key, socket.query_params.get("access_token", ""))
        if info is None:
            await socket.close(code=4003, reason="invalid token")  # before accept: a 403 on the upgrade
            return
        if sim.hub.count(api_key) >= MAX_CONNECTIONS:
            await socket.close(code=4029, reason="too many connections")
            return
        await socket.accept()
        await serve_connection(socket, sim.hub, Connection(info.user_id, api_key))

    ws_main = websocket("/ws")(ticker)
    ws_root = websocket("/")(ticker)

    # ---- admin (faults) -----------------------------------------------------------------------

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
        return sim.faults.as_dict()

    @post("/sim/drop_ws", status_code=200)
    async def drop_ws() -> dict:
        admin_only()
        return {"dropped": sim.hub.drop_all()}

    @post("/sim/expire_sessions", status_code=200)
    async def expire_sessions() -> dict:
        admin_only()
        return {"expired": sim.accounts.expire_all()}

    @post("/sim/price", status_code=200)
    async def pin_price(data: dict) -> dict:
        """Pin (or with null, release) an underlying's spot: {"underlying": "INFY", "price": 1500.0}."""
        admin_only()
        u = data.get("underlying")
        if u not in sim.market.universe.vol:
            raise HTTPException(status_code=400, detail="unknown underlying")
        if data.get("price") is None:
            sim.market.overrides.pop(u, None)
        else:
            sim.market.overrides[u] = float(data["price"])
        return {"underlying": u, "price": sim.market.spot(u)}

    @get("/sim/clock")
    async def clock() -> dict:
        return {"now": sim.market.clock.stamp(), "epoch": sim.market.clock.epoch(), "speed": sim.market.clock.speed}

    @get("/sim/health")
    async def health() -> dict:
        return {"ok": True, "connections": len(sim.hub.connections)}

    handlers = [login_page, login_submit, session_token, session_logout, user_profile, user_margins,
                user_margins_segment, place_order, modify_order, cancel_order, orders, order_history, order_trades,
                trades, positions, convert_position, holdings, instruments_all, instruments_exchange, quote, quote_ohlc,
                quote_ltp, historical, margins_orders, margins_basket, ws_main, ws_root, get_faults, set_faults,
                drop_ws, expire_sessions, pin_price, clock, health]

    task: list[asyncio.Task] = []

    async def start() -> None:
        task.append(asyncio.create_task(sim.run()))

    async def stop() -> None:
        for t in task:
            t.cancel()
            with contextlib.suppress(BaseException):
                await t

    return Litestar(route_handlers=handlers, on_startup=[start], on_shutdown=[stop], openapi_config=None,
                    logging_config=None,
                    debug=False)


async def _async(value):
    return value


def _parse_time(value: str, end: bool = False) -> datetime:
    value = value.strip()
    fmt = "%Y-%m-%d %H:%M:%S" if len(value) > 10 else "%Y-%m-%d"
    dt = datetime.strptime(value, fmt).replace(tzinfo=IST)
    if end and len(value) <= 10:
        dt += timedelta(hours=23, minutes=59, seconds=59)
    return dt
