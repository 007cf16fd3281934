"""Strategies: the catalog with each one's params schema, add, list, remove."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, get, post
from msgspec import Meta

from gateway.trading import Trading

StrategyName = Annotated[str, Meta(min_length=1, max_length=64)]
Symbol = str | Annotated[int, Meta(ge=0, lt=2**32)]


class AddStrategyBody(msgspec.Struct, forbid_unknown_fields=True):
    strategy: StrategyName
    params: dict[str, Any] = {}
    symbols: Annotated[list[Symbol], Meta(max_length=200)] = []
    strategy_id: Annotated[str, Meta(max_length=64, pattern=r"^[A-Za-z0-9_\-]*$")] = ""


class RemoveStrategyBody(msgspec.Struct, forbid_unknown_fields=True):
    strategy_id: Annotated[str, Meta(min_length=1, max_length=64)]


class StrategiesController(Controller):
    path = "/api/strategies"
    tags = ["strategies"]

    @get("/")
    async def list_strategies(self, trading: Trading, user_id: str) -> list[dict]:
        return await trading.strategies(user_id)

    @get("/catalog")
    async def catalog(self, trading: Trading, user_id: str) -> list[dict]:
        return await trading.catalog(user_id)

    @post("/add", status_code=200)
    async def add(self, data: AddStrategyBody, trading: Trading, user_id: str) -> dict:
        return await trading.add_strategy(user_id, data.strategy, data.params, data.symbols, data.strategy_id)

    @post("/remove", status_code=200)
    async def remove(self, data: RemoveStrategyBody, trading: Trading, user_id: str) -> dict:
        return await trading.remove_strategy(user_id, data.strategy_id)
