"""Instrument search (indices, equities, F&O) and option chains."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.params import Parameter

from gateway.chart_history import day_chart
from gateway.trading import Trading


class MarketController(Controller):
    path = "/api"
    tags = ["market"]

    @get("/instruments")
    async def instruments(self, trading: Trading, user_id: str,
                          q: Annotated[str, Parameter(min_length=1, max_length=64)],
                          limit: Annotated[int, Parameter(ge=1, le=100)] = 20) -> list[dict]:
        return await trading.search_instruments(q, limit, user_id=user_id)

    @get("/chart/{token:int}")
    async def chart(self, trading: Trading, user_id: str, token: Annotated[int, Parameter(ge=1)],
                    day: Annotated[str, Parameter(pattern=r"^(\d{4}-\d{2}-\d{2})?$",
                                                  description="yyyy-mm-dd; empty = the desk's trading day")] = "") -> dict:
        """The price chart's day so far: minute closes (Kite historical) and the user's fills of the instrument."""
        return await day_chart(trading, user_id, token, day)

    @get("/option-chain")
    async def option_chain(self, trading: Trading, user_id: str,
                           underlying: Annotated[str, Parameter(min_length=1, max_length=40)],
                           expiry: Annotated[str, Parameter(pattern=r"^(\d{4}-\d{2}-\d{2})?$")] = "") -> dict:
        return await trading.option_chain(user_id, underlying, expiry)

    @get("/options/book")
    async def option_book(self, trading: Trading, user_id: str,
                          strategy: Annotated[str, Parameter(max_length=64)] = "") -> dict:
        """Greeks (delta, gamma, theta a day, vega a vol point) and payoff (at expiry and today, rupees)
        of the open F&O positions per underlying: the account's, or one strategy's from the journal."""
        return await trading.option_book(user_id, strategy)

    @get("/options/structure")
    async def structure(self, trading: Trading, user_id: str,
                        structure: Annotated[str, Parameter(max_length=40)] = "iron_condor",
                        underlying: Annotated[str, Parameter(min_length=1, max_length=40)] = "NIFTY",
                        expiry: Annotated[str, Parameter(pattern=r"^(\d{4}-\d{2}-\d{2})?$")] = "",
                        lots: Annotated[int, Parameter(ge=1, le=50)] = 1,
                        steps: Annotated[int, Parameter(ge=1, le=10)] = 2,
                        wing: Annotated[int, Parameter(ge=1, le=10)] = 2) -> dict:
        """An option strategy's structure (iron_condor, short_straddle, short_strangle, long_straddle,
        bull_call_spread, bear_put_spread) on today's chain: legs, premium, greeks and payoff."""
        return await trading.structure_payoff(user_id, underlying, structure, expiry, lots, steps, wing)
