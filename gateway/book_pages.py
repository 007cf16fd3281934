"""The order book (``/orders``) and the trade book (``/trades``): the journal's orders and fills, newest
first, filtered (status, strategy, symbol, side, day) and paginated by the journal's keyset cursor
(``before`` = the previous page's ``next``), 50 rows a page however long the day.

Filters and pages are plain links and GET forms (they work without JavaScript; htmx swaps only the
book and pushes the URL, so Back and Reload show the same page). The first page refreshes itself on
the user's order events; older pages stay still while the trader reads them."""

from __future__ import annotations

import asyncio
from urllib.parse import urlencode

from litestar import Controller, Request, get
from litestar.response import Template

from gateway.order_pages import CHOICES, DEFAULTS
from gateway.page_context import attempt, page
from gateway.trading import Trading

PAGE = 50
STATUSES = ("", "open", "COMPLETE", "CANCELLED", "REJECTED")


def _filters(request: Request, names: tuple[str, ...]) -> dict[str, str]:
    return {n: str(request.query_params.get(n) or "").strip()[:64] for n in names}


def _link(path: str, filters: dict[str, str], before: str = "") -> str:
    query = {k: v for k, v in {**filters, "before": before}.items() if v}
    return path + ("?" + urlencode(query) if query else "")


async def _strategy_ids(trading: Trading, user_id: str) -> list[str]:
    strategies, _ = await attempt(trading.strategies(user_id))
    return sorted({s["strategy_id"] for s in strategies or []})


class BookPagesController(Controller):
    include_in_schema = False

    @get("/orders")
    async def orders(self, request: Request, trading: Trading, user_id: str) -> Template:
        filters = _filters(request, ("status", "strategy", "symbol", "day"))
        before = str(request.query_params.get("before") or "")
        (book, error), strategy_ids = await asyncio.gather(
            attempt(trading.order_page(user_id, PAGE, before, filters["status"], filters["strategy"],
                                       filters["symbol"], filters["day"])),
            _strategy_ids(trading, user_id))
        book = book or {"items": [], "next": None}
        return page("orders.html", request, book=book, book_error=error, filters=filters, before=before,
                    order_actions=True, values=dict(DEFAULTS), errors={}, **CHOICES,
                    statuses=STATUSES, strategy_ids=strategy_ids, self_url=_link("/orders", filters, before),
                    newest_url=_link("/orders", filters), older_url=_link("/orders", filters, book["next"] or "")
                    if book["next"] else "")

    @get("/trades")
    async def trades(self, request: Request, trading: Trading, user_id: str) -> Template:
        filters = _filters(request, ("strategy", "symbol", "side", "day"))
        before = str(request.query_params.get("before") or "")
        # no day asked: the day the P&L panel and the report are on (the broker's, when a paper market
        # runs ahead of this machine's clock), not this machine's date
        day = filters["day"] or (await attempt(trading.trading_day(user_id)))[0] or ""
        (book, error), strategy_ids = await asyncio.gather(
            attempt(trading.trade_page(user_id, PAGE, before, filters["strategy"], filters["symbol"],
                                       filters["side"], day)),
            _strategy_ids(trading, user_id))
        book = book or {"items": [], "next": None}
        return page("trades.html", request, book=book, book_error=error, filters=filters, before=before, day=day,
                    strategy_ids=strategy_ids, self_url=_link("/trades", filters, before),
                    newest_url=_link("/trades", filters), older_url=_link("/trades", filters, book["next"] or "")
                    if book["next"] else "")
