"""The one async client kta uses to talk to Kite Connect (or kite_sim): pykiteconnect's method
names, msgspec models out, typed exceptions with the broker's message, client-side rate limits, a
per-user egress for order calls (the 2026 static-IP rule), and order placement that reaches the OMS at
most once."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import logging
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import msgspec
import stamina

from shared.kite import errors, tls
from shared.kite import models as m
from shared.kite import waits
from shared.kite.egress import Egress
from shared.kite.http1 import LeanTransport
from shared.kite.ratelimit import RateLimiter, endpoint_class

log = logging.getLogger("kta.kite")

# Max days per historical request by interval (Kite forum, staff).
HISTORICAL_MAX_DAYS = {"minute": 60, "3minute": 100, "5minute": 100, "10minute": 100, "15minute": 200,
                       "30minute": 200, "60minute": 400, "day": 2000}
READ_RETRIES = 3
PLACE_RETRIES = 3  # only for calls the broker provably did not take


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return format(Decimal(str(value)).normalize(), "f")
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class KiteClient:
    def __init__(
        self,
        api_key: str,
        access_token: str | None = None,
        *,
        root: str = "https://api.kite.trade",
        login_url: str = "https://kite.zerodha.com/connect/login",
        timeout: float = 7.0,
        proxy: str | None = None,
        local_address: str | None = None,
        on_token_expired: Callable[[errors.TokenException], Any] | None = None,
        rate_limiter: RateLimiter | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.api_key = api_key
        self.access_token = access_token
        self.root = root.rstrip("/")
        self._login_url = login_url
        self.on_token_expired = on_token_expired
        self.limiter = rate_limiter or RateLimiter()
        self.timeout = timeout
        self._closing: set[asyncio.Task] = set()
        self.egress = Egress(proxy or "", local_address or "")
        self._http = self._client(timeout, transport)
        # Kite takes order calls only from the app's static IP: they, and only they, leave through the
        # user's egress (reads stay direct, so a dead proxy never blinds reconciliation).
        self._orders_http = self._egress_client()

    def _egress_client(self) -> httpx.AsyncClient:
        if not self.egress.configured:
            return self._http
        bound = LeanTransport(local_address=self.egress.local_address) if self.egress.local_address else None
        return self._client(self.timeout, bound, self.egress.proxy)

    def use_session(self, access_token: str, *, proxy: str = "", local_address: str = "") -> None:
        """A new access token (the daily login) and/or egress for the same user, applied in place: whoever
        holds this client goes on using it. Raises EgressError for an egress that can never work."""
        self.access_token = access_token
        egress = Egress(proxy or "", local_address or "")
        if egress != self.egress:
            old = self._orders_http
            self.egress = egress
            self._orders_http = self._egress_client()
            if old is not self._http:  # closed once its requests in flight are done
                task = asyncio.get_running_loop().create_task(old.aclose())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)

    def _client(self, timeout: float, transport: httpx.AsyncBaseTransport | None,
                proxy: str | None = None) -> httpx.AsyncClient:
        if transport is None and not proxy:
            transport = LeanTransport()  # http1.py: httpcore's CPU per request spared; a proxy stays on httpx's
        return httpx.AsyncClient(
            base_url=self.root, timeout=timeout, proxy=proxy or None, transport=transport, trust_env=False,
            verify=tls.context(),
            headers={"X-Kite-Version": "3", "User-Agent": "kta/0.1"},
            limits=httpx.Limits(max_connections=20, max_keepalive_connections=10),
        )

    async def aclose(self) -> None:
        await self._http.aclose()
        if self._orders_http is not self._http:
            await self._orders_http.aclose()

    async def __aenter__(self) -> "KiteClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    def login_url(self) -> str:
        return f"{self._login_url}?v=3&api_key={self.api_key}"

    # ---- transport ----------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.api_key}:{self.access_token}"} if self.access_token else {}

    async def _send(self, method: str, path: str, *, params=None, data=None, json=None, auth=True) -> httpx.Response:
        cls = endpoint_class(method, path)
        http = self._http
        if cls == "orders" and self.egress.configured:
            http = self._orders_http
            problem = await self.egress.problem()
            if problem:
                raise errors.EgressUnavailable(f"orders of this account leave from {self.egress.describe()}, "
                                               f"which cannot be used: {problem}. Nothing was sent.", 503)
        await self.limiter.acquire(cls)
        if cls == "orders" and method == "POST":
            waits.handed(data.get("tag") if data else None)
        try:
            with waits.waiting(waits.BROKER):
                return await http.request(method, path, params=params, data=data, json=json,
                                          headers=self._headers() if auth else None)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError) as e:
            raise errors.NotSent(f"cannot reach the broker: {e!r}", 503) from e  # no request was written
        except httpx.TimeoutException as e:
            raise errors.NetworkException(f"timeout talking to the broker: {e!r}", 504) from e
        except httpx.HTTPError as e:
            raise errors.NetworkException(f"the connection to the broker failed: {e!r}", 503) from e

    def _parse(self, r: httpx.Response, auth: bool = True) -> Any:
        ctype = r.headers.get("content-type", "")
        if "json" in ctype:
            try:
                body = r.json()
            except ValueError:
                raise errors.DataException(f"unparseable JSON from the broker (HTTP {r.status_code})", 502) from None
            if r.status_code >= 400 or body.get("status") == "error" or body.get("error_type"):
                err = errors.from_response(r.status_code, body)
                if isinstance(err, errors.TokenException) and auth and self.on_token_expired:
                    self.on_token_expired(err)
                raise err
            return body.get("data")
        if "csv" in ctype and r.status_code < 400:
            return r.text
        raise errors.DataException(f"unexpected response {r.status_code} {ctype!r} from the broker", r.status_code)

    async def _request(self, method: str, path: str, *, params=None, data=None, json=None, auth=True) -> Any:
        """Reads are retried with backoff on a 429 or a network error; writes never blindly."""
        async for attempt in stamina.retry_context(on=errors.NetworkException,
                                                   attempts=READ_RETRIES + 1 if method == "GET" else 1,
                                                   wait_initial=0.2, wait_max=2.0, wait_jitter=0.1, timeout=None):
            with attempt:
                return self._parse(await self._send(method, path, params=params, data=data, json=json, auth=auth), auth)
        raise AssertionError("unreachable")

    @staticmethod
    def _form(**fields: Any) -> dict[str, str]:
        return {k: _fmt(v) for k, v in fields.items() if v is not None}

    # ---- session ------------------------------------------------------------------------------

    async def generate_session(self, request_token: str, api_secret: str) -> m.Session:
        checksum = hashlib.sha256(f"{self.api_key}{request_token}{api_secret}".encode()).hexdigest()
        data = await self._request("POST", "/session/token", auth=False,
                                   data={"api_key": self.api_key, "request_token": request_token, "checksum": checksum})
        session = m.convert(data, m.Session)
        self.access_token = session.access_token
        return session

    async def invalidate_access_token(self) -> bool:
        return bool(await self._request("DELETE", "/session/token", auth=False,
                                        params={"api_key": self.api_key, "access_token": self.access_token}))

    # ---- user ---------------------------------------------------------------------------------

    async def profile(self) -> m.Profile:
        return m.convert(await self._request("GET", "/user/profile"), m.Profile)

    async def margins(self, segment: str | None = None) -> m.Margins | m.MarginSegment:
        if segment:
            return m.convert(await self._request("GET", f"/user/margins/{segment}"), m.MarginSegment)
        return m.convert(await self._request("GET", "/user/margins"), m.Margins)

    # ---- orders -------------------------------------------------------------------------------

    async def place_order(self, variety: str, exchange: str, tradingsymbol: str, transaction_type: str,
                          quantity: int, product: str, order_type: str, price=None, trigger_price=None,
                          validity: str | None = None, validity_ttl: int | None = None,
                          disclosed_quantity: int | None = None, market_protection=None, tag: str | None = None,
                          iceberg_legs: int | None = None, iceberg_quantity: int | None = None,
                          autoslice: bool | None = None) -> str:
        """Place an order and return its id. The order reaches the OMS at most once:

        * a call the broker provably did not take (a 429 from its gateway, a connection that never
          opened) is sent again after a backoff, a bounded number of times;
        * any other lost answer (a timeout, a dropped connection, a 5xx or garbled reply) may still land:
          the ``tag`` is looked up once, and if the order is not in the book, ``OrderUnknown`` is raised.
          It is never sent again: reconciliation adopts the order by its tag if it shows up later."""
        form = self._form(exchange=exchange, tradingsymbol=tradingsymbol, transaction_type=transaction_type,
                          quantity=quantity, product=product, order_type=order_type, price=price,
                          trigger_price=trigger_price, validity=validity, validity_ttl=validity_ttl,
                          disclosed_quantity=disclosed_quantity, market_protection=market_protection, tag=tag,
                          iceberg_legs=iceberg_legs, iceberg_quantity=iceberg_quantity, autoslice=autoslice)
        try:
            return (await self._order_call("POST", f"/orders/{variety}", form))["order_id"]
        except (errors.TooManyRequests, errors.NotSent):
            raise  # the broker provably never took it (the retries are spent)
        except (errors.NetworkException, errors.DataException) as lost:
            return await self._resolve_lost(tag, lost)

    async def _order_call(self, method: str, path: str, form: dict[str, Any]) -> Any:
        """A place, modify, cancel or eDIS authorisation: sent again only when the broker provably did not take
        it (a 429 from its gateway, a connection that never opened), a bounded number of times after a backoff."""
        async for attempt in stamina.retry_context(on=(errors.TooManyRequests, errors.NotSent),
                                                   attempts=PLACE_RETRIES + 1, wait_initial=0.25, wait_max=2.0,
                                                   wait_jitter=0.1, timeout=None):
            with attempt:
                return await self._request(method, path, data=form or None)
        raise AssertionError("unreachable")

    async def _resolve_lost(self, tag: str | None, lost: errors.KiteError) -> str:
        found = None
        if tag:
            try:
                found = await self.find_order_by_tag(tag)
            except errors.KiteError as e:
                log.warning("place_order: the tag lookup after a lost answer failed: %s", e)
        if found is not None:
            log.warning("place_order: the answer was lost but the broker has the order", extra={"tag": tag})
            return found.order_id
        where = f"its tag {tag} is not in the order book yet" if tag else "it has no tag to look it up by"
        raise errors.OrderUnknown(f"the broker's answer to the order was lost ({lost.message}) and {where}; "
                                  f"it is not sent again", lost.status, lost.error_type, tag=tag) from lost

    async def find_order_by_tag(self, tag: str) -> m.Order | None:
        for order in await self.orders():
            if order.tag == tag:
                return order
        return None

    async def modify_order(self, variety: str, order_id: str, quantity=None, price=None, order_type=None,
                           trigger_price=None, validity=None, disclosed_quantity=None) -> str:
        form = self._form(quantity=quantity, price=price, order_type=order_type, trigger_price=trigger_price,
                          validity=validity, disclosed_quantity=disclosed_quantity)
        return (await self._order_call("PUT", f"/orders/{variety}/{order_id}", form))["order_id"]

    async def cancel_order(self, variety: str, order_id: str) -> str:
        return (await self._order_call("DELETE", f"/orders/{variety}/{order_id}", {}))["order_id"]

    async def orders(self) -> list[m.Order]:
        return m.convert(await self._request("GET", "/orders"), list[m.Order])

    async def order_history(self, order_id: str) -> list[m.Order]:
        return m.convert(await self._request("GET", f"/orders/{order_id}"), list[m.Order])

    async def trades(self) -> list[m.Trade]:
        return m.convert(await self._request("GET", "/trades"), list[m.Trade])

    async def order_trades(self, order_id: str) -> list[m.Trade]:
        return m.convert(await self._request("GET", f"/orders/{order_id}/trades"), list[m.Trade])

    # ---- GTT (good till triggered) --------------------------------------------------------------

    @staticmethod
    def _gtt_form(kind: str, exchange: str, tradingsymbol: str, trigger_values: list[float], last_price: float,
                  orders: list[dict]) -> dict[str, str]:
        """Kite's GTT form: ``condition`` and ``orders`` are JSON strings (kite-connect.md §3.13)."""
        condition = {"exchange": exchange, "tradingsymbol": tradingsymbol, "trigger_values": trigger_values,
                     "last_price": last_price}
        legs = [{"exchange": exchange, "tradingsymbol": tradingsymbol, **o} for o in orders]
        return {"type": kind, "condition": json.dumps(condition), "orders": json.dumps(legs)}

    async def place_gtt(self, kind: str, exchange: str, tradingsymbol: str, trigger_values: list[float],
                        last_price: float, orders: list[dict]) -> int:
        """A ``single`` or ``two-leg`` trigger; each of ``orders``: transaction_type, quantity, order_type,
        product, price. Returns its trigger id. Like an order, never sent blindly twice."""
        form = self._gtt_form(kind, exchange, tradingsymbol, trigger_values, last_price, orders)
        return int((await self._order_call("POST", "/gtt/triggers", form))["trigger_id"])

    async def modify_gtt(self, trigger_id: int, kind: str, exchange: str, tradingsymbol: str,
                         trigger_values: list[float], last_price: float, orders: list[dict]) -> int:
        form = self._gtt_form(kind, exchange, tradingsymbol, trigger_values, last_price, orders)
        return int((await self._order_call("PUT", f"/gtt/triggers/{trigger_id}", form))["trigger_id"])

    async def delete_gtt(self, trigger_id: int) -> int:
        return int((await self._order_call("DELETE", f"/gtt/triggers/{trigger_id}", {}))["trigger_id"])

    async def gtt(self, trigger_id: int) -> m.Gtt:
        return m.convert(await self._request("GET", f"/gtt/triggers/{trigger_id}"), m.Gtt)

    async def gtts(self) -> list[m.Gtt]:
        return m.convert(await self._request("GET", "/gtt/triggers"), list[m.Gtt])

    # ---- portfolio ----------------------------------------------------------------------------

    async def positions(self) -> m.Positions:
        return m.convert(await self._request("GET", "/portfolio/positions"), m.Positions)

    async def holdings(self) -> list[m.Holding]:
        return m.convert(await self._request("GET", "/portfolio/holdings"), list[m.Holding])

    async def authorise_holdings(self, holdings: list[tuple[str, int]] | None = None) -> str:
        """Start the depository's eDIS/TPIN authorisation of delivery sells (``(isin, quantity)`` pairs;
        None: every holding) and return its ``request_id``; the user completes it on
        ``holdings_authorisation_url(request_id)``. Until then Kite answers such a sell with HTTP 428
        (``errors.HoldingAuthorisationRequired``)."""
        form = {"isin": [isin for isin, _ in holdings], "quantity": [_fmt(q) for _, q in holdings]} if holdings else {}
        return (await self._order_call("POST", "/portfolio/holdings/authorise", form))["request_id"]

    def holdings_authorisation_url(self, request_id: str) -> str:
        """The depository's page for ``request_id``, on the same site as the login page
        (kite.zerodha.com for Kite, kite_sim's root for the sim)."""
        site = self._login_url.split("/connect/", 1)[0]
        return f"{site}/connect/portfolio/authorise/holdings/{self.api_key}/{request_id}"

    async def convert_position(self, exchange: str, tradingsymbol: str, transaction_type: str, position_type: str,
                               quantity: int, old_product: str, new_product: str) -> bool:
        return bool(await self._request("PUT", "/portfolio/positions", data=self._form(
            exchange=exchange, tradingsymbol=tradingsymbol, transaction_type=transaction_type,
            position_type=position_type, quantity=quantity, old_product=old_product, new_product=new_product)))

    # ---- market data --------------------------------------------------------------------------

    async def instruments(self, exchange: str | None = None) -> list[m.Instrument]:
        text = await self._request("GET", f"/instruments/{exchange}" if exchange else "/instruments")
        rows = [{**r, "expiry": r.get("expiry") or None} for r in csv.DictReader(io.StringIO(text))]  # "" = none
        try:
            return msgspec.convert(rows, list[m.Instrument], strict=False)  # the CSV's text cells to numbers, dates
        except msgspec.ValidationError as e:
            raise errors.DataException(f"the broker's instrument list has a bad row: {e}", 502) from None

    async def quote(self, *instruments: str) -> dict[str, m.Quote]:
        return m.convert(await self._request("GET", "/quote", params=[("i", i) for i in instruments]),
                         dict[str, m.Quote])

    async def ohlc(self, *instruments: str) -> dict[str, m.OHLCQuote]:
        return m.convert(await self._request("GET", "/quote/ohlc", params=[("i", i) for i in instruments]),
                         dict[str, m.OHLCQuote])

    async def ltp(self, *instruments: str) -> dict[str, m.LTPQuote]:
        return m.convert(await self._request("GET", "/quote/ltp", params=[("i", i) for i in instruments]),
                         dict[str, m.LTPQuote])

    async def historical_data(self, instrument_token: int, from_date: datetime | date, to_date: datetime | date,
                              interval: str, continuous: bool = False, oi: bool = False) -> list[m.Candle]:
        """Candles over any range: split into chunks of the interval's maximum span. A bare date
        means the whole day (from its 00:00:00 to its 23:59:59)."""
        if interval not in HISTORICAL_MAX_DAYS:
            raise errors.InputException(f"invalid interval {interval!r}", 400)
        if not isinstance(from_date, datetime):
            from_date = datetime.combine(from_date, datetime.min.time())
        if not isinstance(to_date, datetime):
            to_date = datetime.combine(to_date, datetime.max.time().replace(microsecond=0))
        span = timedelta(days=HISTORICAL_MAX_DAYS[interval])
        out: list[m.Candle] = []
        start = from_date
        while start <= to_date:
            end = min(to_date, start + span - timedelta(seconds=1))
            data = await self._request("GET", f"/instruments/historical/{instrument_token}/{interval}", params={
                "from": _fmt(start), "to": _fmt(end), "continuous": int(continuous), "oi": int(oi)})
            out += m.convert(data["candles"], list[m.Candle])
            start = end + timedelta(seconds=1)
        return out

    async def order_margins(self, orders: list[dict]) -> list[m.OrderMargin]:
        return m.convert(await self._request("POST", "/margins/orders", json=orders), list[m.OrderMargin])

    async def order_charges(self, orders: list[dict]) -> list[m.OrderCharges]:
        """Charges of executed orders (``order_id``, ``exchange``, ``tradingsymbol``, ``transaction_type``,
        ``variety``, ``product``, ``order_type``, ``quantity``, ``average_price``): Kite's virtual contract
        note, which kite_sim answers from ``shared/charges.py``."""
        return m.convert(await self._request("POST", "/charges/orders", json=orders), list[m.OrderCharges])

    async def basket_order_margins(self, orders: list[dict], consider_positions: bool = True) -> m.BasketMargins:
        data = await self._request("POST", f"/margins/basket?consider_positions={str(consider_positions).lower()}",
                                   json=orders)
        return m.convert(data, m.BasketMargins)


