"""The user's account: status, Kite profile and margins, holdings, positions, orders."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Request, get, post
from litestar.params import Parameter

from gateway.api.controls import OrderBody, place_order
from gateway.trading import Trading


Limit = Annotated[int, Parameter(ge=1, le=200, description="rows per page")]
Before = Annotated[str, Parameter(max_length=200, description="the previous page's `next`; empty: the newest")]
Day = Annotated[str, Parameter(pattern=r"^(\d{4}-\d{2}-\d{2}|all)?$", description="yyyy-mm-dd, all; empty = today")]


class AccountController(Controller):
    path = "/api"
    tags = ["account"]

    @get("/status")
    async def status(self, request: Request, trading: Trading, user_id: str) -> dict:
        """Broker session (live/expired/absent + expiry), live state, kill switch, worker health, CSRF token."""
        return {**await trading.status(user_id), "csrf_token": request.scope["auth"].csrf_token}

    @get("/profile")
    async def profile(self, trading: Trading, user_id: str) -> dict:
        return await trading.profile(user_id)

    @get("/margins")
    async def margins(self, trading: Trading, user_id: str) -> dict:
        return await trading.margins(user_id)

    @get("/holdings")
    async def holdings(self, trading: Trading, user_id: str) -> list[dict]:
        return await trading.holdings(user_id)

    @get("/positions")
    async def positions(self, trading: Trading, user_id: str) -> dict:
        return await trading.positions(user_id)

    @get("/orders")
    async def orders(self, trading: Trading, user_id: str, limit: Limit = 50, before: Before = "",
                     status: Annotated[str, Parameter(max_length=32, description="open, COMPLETE, CANCELLED, "
                                                      "REJECTED, … (a Kite status or kta state)")] = "",
                     strategy: Annotated[str, Parameter(max_length=64)] = "",
                     symbol: Annotated[str, Parameter(max_length=64)] = "", day: Day = "") -> dict:
        """The order book, newest first, one page: ``{"items": [...], "next": cursor | null}``; pass
        ``next`` as ``before`` for the older page."""
        return await trading.order_page(user_id, limit, before, status, strategy, symbol, day)

    @post("/orders", status_code=201)
    async def place(self, trading: Trading, user_id: str, data: OrderBody) -> dict:
        """The trader's own order, through kta's risk checks and protection (paise; a refusal names the field)."""
        return await place_order(trading, user_id, data)

    @get("/trades")
    async def trades(self, trading: Trading, user_id: str, limit: Limit = 50, before: Before = "",
                     strategy: Annotated[str, Parameter(max_length=64)] = "",
                     symbol: Annotated[str, Parameter(max_length=64)] = "",
                     side: Annotated[str, Parameter(pattern=r"^(BUY|SELL)?$")] = "", day: Day = "") -> dict:
        """The trade book (every fill kta journaled), newest first, one page: ``{"items", "next"}``."""
        return await trading.trade_page(user_id, limit, before, strategy, symbol, side, day)
