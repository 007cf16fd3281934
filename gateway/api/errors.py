"""A worker's refusal (``TradingError``) as an HTTP answer naming the field; never a 500."""

from __future__ import annotations

from litestar import Request, Response

from gateway.trading import TradingError


def trading_error_handler(request: Request, exc: TradingError) -> Response:
    headers = {"Retry-After": "5"} if exc.status == 503 else None
    return Response(exc.to_dict(), status_code=exc.status, headers=headers)
