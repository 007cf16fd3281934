"""The desk's reads on the trading facade (``gateway.trading.Trading`` inherits them): the order and
trade books a page at a time, the day the desk reports on, and the per-strategy P&L beside the
broker's day figure. They use only the facade's plumbing (``command``, ``journal``, ``positions``,
the instrument cache)."""

from __future__ import annotations

import asyncio
import time
from gateway.strategy_pnl import default_instrument_type, strategy_pnl
from gateway.trading_error import TradingError
from gateway.worker_commands import ready
from shared import ist
from shared import messages as m

FILL_PAGE = 201  # the trade book's largest page (GetTrades.limit)
DAY_FILL_PAGES = 25  # at most ~5,000 fills of one day for the P&L panel (the journal read's bound before)
# The execution worker answers the kill switch's reads on its execution subject as on its risk one (one
# handler): asked there, a dashboard's risk summary joins the page's execution reads in one request.
RISK_READS = "execution"


def reporting_day(page: dict) -> str:
    """The day the execution worker trades on now — the exchange's (``today`` in a trade page; a paper
    market runs ahead of this machine's clock or, pinned to a date, behind it) — or the newest fill's when
    later (a worker that has not heard the exchange's time yet answers with the machine's day)."""
    today = page.get("today") or ist.day(time.time())
    items = page["items"]
    return max(today, items[0]["day"]) if items else today


class DeskQueries:
    """Mixed into Trading; ``self`` provides command, journal, positions, instruments."""

    async def order_page(self, user_id: str, limit: int = 50, before: str = "", status: str = "",
                         strategy_id: str = "", symbol: str = "", day: str = "") -> dict:
        """One page of the order book, newest first: ``{"items", "next"}`` (``next`` → ``before``)."""
        page = await self.command(user_id, "execution", m.GetOrders(
            limit=limit, before=before, status=status, strategy_id=strategy_id, symbol=symbol, day=day))
        return {**page, "items": await self._with_exchange_times(user_id, page["items"])}

    async def trade_page(self, user_id: str, limit: int = 50, before: str = "", strategy_id: str = "",
                         symbol: str = "", side: str = "", day: str = "") -> dict:
        """One page of the journal's fills, newest first: ``{"items", "next"}``."""
        return await self.command(user_id, "execution", m.GetTrades(
            limit=limit, before=before, strategy_id=strategy_id, symbol=symbol, side=side, day=day))

    # ---- the trader's own orders and the operator's controls (the execution worker's commands) ----

    async def place_order(self, user_id: str, order: m.PlaceOrder) -> dict:
        """Through risk and protection like a strategy's signal; a refusal names its field."""
        return await self.command(user_id, "execution", order, timeout=30.0)

    async def modify_order(self, user_id: str, tag: str, **changes) -> dict:
        return await self.command(user_id, "execution", m.ModifyOrder(tag=tag, **changes))

    async def cancel_order(self, user_id: str, tag: str) -> dict:
        return await self.command(user_id, "execution", m.CancelOrder(tag=tag))

    async def halt(self, user_id: str, reason: str) -> dict:
        """The manual kill switch: HALTED now (entries cancelled, stop-losses kept)."""
        return await self.command(user_id, "risk", m.HaltTrading(reason=reason))

    async def square_off(self, user_id: str, reason: str) -> dict:
        """Every open order cancelled (stop-losses too), then every position closed."""
        return await self.command(user_id, "execution", m.SquareOffAll(reason=reason), timeout=30.0)

    async def set_risk_limits(self, user_id: str, limits: m.RiskLimits) -> dict:
        """Replace the user's limits: effective at once, saved and audited by the execution worker."""
        return await self.command(user_id, "risk", m.SetRiskLimits(limits=limits))

    async def risk_limits(self, user_id: str) -> dict:
        """The limits in force (paise)."""
        return (await self.command(user_id, RISK_READS, m.GetRiskLimits()))["limits"]

    async def trading_day(self, user_id: str) -> str:
        """The day the desk reports on: the exchange's trading day as the execution worker keeps it
        (``reporting_day``), never this machine's date."""
        return reporting_day(await self.trade_page(user_id, 1, day="all"))

    async def day_fills(self, user_id: str) -> tuple[str, list[dict]]:
        """The day the desk reports on (``trading_day``'s rule) and its fills, newest first: the trade
        book's pages until a fill of an earlier day — one request for a day of up to 201 fills (it was two,
        the second the day's whole journal, signals and risk events included, on every dashboard load)."""
        day, fills, before = "", [], ""
        for _ in range(DAY_FILL_PAGES):
            page = await self.trade_page(user_id, FILL_PAGE, before=before, day="all")
            items = page["items"]
            day = day or reporting_day(page)
            of_day = [t for t in items if t["day"] == day]
            fills += of_day
            if len(of_day) < len(items) or not page["next"]:
                break
            before = page["next"]
        return day, fills

    async def carried(self, user_id: str, day: str = "") -> dict | None:
        """What each strategy held when ``day`` began (GetCarried; "" = the worker's today): fixed for the
        day, so kept per user — the dashboard asks once a day, not on every load. None when unanswered."""
        cached = self._carried.get(user_id)
        if cached is not None and (not day or cached["day"] == day):
            return cached
        try:
            answer = await self.command(user_id, "execution", m.GetCarried(day=day))
        except TradingError:
            return None
        self._carried[user_id] = answer
        return answer

    async def strategy_pnl(self, user_id: str) -> dict:
        """The day's P&L per strategy from the journal's fills (``gateway.strategy_pnl``), positions carried
        in opened at the previous close, beside the broker's day P&L: ``{"day", "strategies": [...rows,
        total], "broker_day_pnl", "broker_error", "ts"}``."""
        kept = self._carried.get(user_id)
        (day, day_fills), snap, carried = await asyncio.gather(
            self.day_fills(user_id), self._snapshot(user_id), ready(kept) if kept is not None else self.carried(user_id))
        if carried is not None and carried["day"] != day:  # kept from an earlier day, or a newer fill's day
            carried = await self.carried(user_id, day)
        positions = (snap or {}).get("positions", [])
        marks = {(p["exchange"], p["tradingsymbol"]): p["last_price"] for p in positions if p.get("last_price")}
        closes = {(p["exchange"], p["tradingsymbol"]): p["close_price"] for p in positions if p.get("close_price")}
        held = (carried or {}).get("positions", [])
        if any((c["exchange"], c["tradingsymbol"]) not in marks for c in held):
            await self._holdings_prices(user_id, marks, closes)
        opening = [{**c, "price": closes.get((c["exchange"], c["tradingsymbol"])) or c["average_price"]}
                   for c in held]

        def instrument_type(exchange: str, symbol: str) -> str:
            inst = self.instruments.find(f"{exchange}:{symbol}")
            return inst.instrument_type if inst is not None else default_instrument_type(exchange, symbol)

        fills = sorted(day_fills, key=lambda t: (t["fill_timestamp"], t.get("trade_id", "")))
        return {"day": day, "strategies": strategy_pnl(fills, marks, instrument_type, opening),
                "broker_day_pnl": snap.get("day_pnl") if snap else None, "broker_ts": snap.get("ts", 0) if snap else 0,
                "broker_error": "" if snap else "the broker's positions could not be read", "ts": time.time_ns()}

    async def _holdings_prices(self, user_id: str, marks: dict, closes: dict) -> None:
        """Last and previous-close prices (paise) from the holdings: a delivery position carried overnight
        leaves Kite's net positions for its holdings (T1 shares), so the positions hold no price for it."""
        try:
            holdings = await self.holdings(user_id)
        except TradingError:
            return
        for h in holdings:
            key = (h["exchange"], h["tradingsymbol"])
            if h.get("last_price") and key not in marks:
                marks[key] = m.to_paise(h["last_price"])
            if h.get("close_price") and key not in closes:
                closes[key] = m.to_paise(h["close_price"])

    async def _snapshot(self, user_id: str) -> dict | None:
        try:
            return await self.positions(user_id)
        except TradingError:  # no broker session or no worker: the broker's figure is missing
            return None

