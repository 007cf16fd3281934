"""The user's account: status, Kite profile and margins, holdings, positions, orders."""

from __future__ import annotations

from litestar import Controller, Request, get

from gateway.trading import Trading


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
    async def orders(self, trading: Trading, user_id: str) -> list[dict]:
        return await trading.orders(user_id)
