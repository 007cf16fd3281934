"""The one async client kta uses to talk to Kite Connect (or kite_sim): pykiteconnect's method
names, msgspec models out, and order placement that reaches the OMS at most once. How a call travels
(egress, rate limits, typed errors with the broker's message, retries) is ``connection.py``'s."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import logging
import re
from datetime import date, datetime, timedelta

import msgspec

from shared.kite import errors
from shared.kite import models as m
from shared.kite.connection import KiteConnection, form_value

log = logging.getLogger("kta.kite")

CONVERT_ROWS = 500  # ~2.5 ms of one core a call: the event loop's thread gets the GIL between calls

# Max days per historical request by interval (Kite forum, staff).
HISTORICAL_MAX_DAYS = {"minute": 60, "3minute": 100, "5minute": 100, "10minute": 100, "15minute": 200,
                       "30minute": 200, "60minute": 400, "day": 2000}


def parse_instruments(text: str) -> list[m.Instrument]:
    """Kite's instrument list (CSV) as Instruments, converted CONVERT_ROWS at a time: one ``msgspec.convert`` call
    holds the GIL throughout, so Kite's ~90,000 rows in one call held the event loop ~0.45 s even from a thread."""
    rows = [{**r, "expiry": r.get("expiry") or None} for r in csv.DictReader(io.StringIO(text))]  # "" = none
    out: list[m.Instrument] = []
    for start in range(0, len(rows), CONVERT_ROWS):
        try:  # the CSV's text cells to numbers, dates
            out += msgspec.convert(rows[start:start + CONVERT_ROWS], list[m.Instrument], strict=False)
        except msgspec.ValidationError as e:
            where = re.sub(r"\$\[(\d+)\]", lambda g: f"$[{start + int(g[1])}]", str(e))  # the row in the whole list
            raise errors.DataException(f"the broker's instrument list has a bad row: {where}", 502) from None
    return out


class KiteClient(KiteConnection):
    """Kite Connect's API in pykiteconnect's method names, over one ``KiteConnection``."""

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
        form = {"isin": [isin for isin, _ in holdings], "quantity": [form_value(q) for _, q in holdings]} if holdings else {}
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
        # off the event loop: Kite's ~90,000 rows took ~10 s of it at load 8 (a worker's partition leases, renewed
        # every 2 s with a 6 s TTL, were lost meanwhile; its commands went unanswered)
        return await asyncio.to_thread(parse_instruments, text)

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
                "from": form_value(start), "to": form_value(end), "continuous": int(continuous), "oi": int(oi)})
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


