"""Strategies: the catalog with each one's params schema, add, list, remove."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, get, post
from msgspec import Meta

from gateway.trading import Trading

StrategyName = Annotated[str, Meta(min_length=1, max_length=64)]
Symbol = str | Annotated[int, Meta(ge=0, lt=2**32)]
ParamValue = int | float | bool | Annotated[str, Meta(max_length=200)]  # a number, a flag or a choice
INT64 = range(-(2**63), 2**63)


class AddStrategyBody(msgspec.Struct, forbid_unknown_fields=True):
    strategy: StrategyName
    params: Annotated[dict[Annotated[str, Meta(max_length=64)], ParamValue], Meta(max_length=64)] = {}
    symbols: Annotated[list[Symbol], Meta(max_length=200)] = []
    strategy_id: Annotated[str, Meta(max_length=64, pattern=r"^[A-Za-z0-9_\-]*$")] = ""

    def __post_init__(self) -> None:
        for name, value in self.params.items():  # the bus carries 64-bit integers
            if isinstance(value, int) and value not in INT64:
                raise ValueError(f"params.{name}: a whole number this large does not fit in 64 bits")


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
