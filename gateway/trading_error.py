"""A refused request, as the trading facade raises it (importable without the facade)."""

from __future__ import annotations

from typing import Any


class TradingError(Exception):
    """A refused request: ``status`` is the HTTP status, ``field`` the bad input if any."""

    def __init__(self, status: int, message: str, field: str | None = None, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.code = code or ("unavailable" if status == 503 else "error")

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.code, "detail": self.message, "field": self.field}


def sessions_unavailable(e: Exception) -> TradingError:
    """The broker session store did not answer (``shared.broker_sessions.SessionStoreUnavailable``): a 503
    in words, never "connect Kite" (the trader may well be connected)."""
    return TradingError(503, str(e), code=getattr(e, "code", ""))
