"""Dependencies every API controller takes: the trading facade and the logged-in user's id."""

from __future__ import annotations

from litestar import Request

from gateway.guards import user_id_of
from gateway.services import services_of
from gateway.trading import Trading, TradingError


async def provide_trading(request: Request) -> Trading:
    trading = services_of(request).trading
    if trading is None:
        raise TradingError(503, "the gateway is not connected to NATS yet; try again in a moment")
    return trading


async def provide_user_id(request: Request) -> str:
    return user_id_of(request)


DEPENDENCIES = {"trading": provide_trading, "user_id": provide_user_id}
