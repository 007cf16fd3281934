"""Instrument search (indices, equities, F&O) and option chains."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.params import Parameter

from gateway.trading import Trading


class MarketController(Controller):
    path = "/api"
    tags = ["market"]

    @get("/instruments")
    async def instruments(self, trading: Trading, user_id: str,
                          q: Annotated[str, Parameter(min_length=1, max_length=64)],
                          limit: Annotated[int, Parameter(ge=1, le=100)] = 20) -> list[dict]:
        return await trading.search_instruments(q, limit, user_id=user_id)

    @get("/option-chain")
    async def option_chain(self, trading: Trading, user_id: str,
                           underlying: Annotated[str, Parameter(min_length=1, max_length=40)],
                           expiry: Annotated[str, Parameter(pattern=r"^(\d{4}-\d{2}-\d{2})?$")] = "") -> dict:
        return await trading.option_chain(user_id, underlying, expiry)
