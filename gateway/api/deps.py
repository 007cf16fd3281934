"""Dependencies every API controller takes: the trading facade and the logged-in user's id."""

from __future__ import annotations

from litestar import Request
from litestar.di import Provide

from gateway.guards import user_id_of
from gateway.services import services_of
from gateway.trading import Trading, TradingError


async def provide_trading(request: Request, user_id: str) -> Trading:  # noqa: ARG001 - see DEPENDENCIES
    trading = services_of(request).trading
    if trading is None:
        raise TradingError(503, "the gateway is not connected to NATS yet; try again in a moment")
    return trading


async def provide_user_id(request: Request) -> str:
    return user_id_of(request)


# ``trading`` takes ``user_id`` (every route that trades is a logged-in user's) so that Litestar resolves the
# two one after the other: two dependencies of one depth are resolved in an anyio task group, two tasks and a
# cancel scope on every request (2-3 % of a dashboard load's gateway CPU).
# Provide objects, not bare functions: Litestar parses a Provide's signature once, a bare function's again
# for each of the ~230 route handlers (about a third of the app's build time).
DEPENDENCIES = {"trading": Provide(provide_trading), "user_id": Provide(provide_user_id)}
