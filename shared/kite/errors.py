"""Kite's error types as exceptions, carrying the broker's message, HTTP status and error_type."""

from __future__ import annotations


class KiteError(Exception):
    error_type = "GeneralException"

    def __init__(self, message: str, status: int = 500, error_type: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_type = error_type or type(self).error_type

    def __str__(self) -> str:
        return f"{self.error_type} ({self.status}): {self.message}"


class GeneralException(KiteError):
    error_type = "GeneralException"


class TokenException(KiteError):
    """The session is dead (expired at 06:00 IST, logged out, or invalid): log in again, never retry."""

    error_type = "TokenException"


class PermissionException(KiteError):
    error_type = "PermissionException"


class UserException(KiteError):
    error_type = "UserException"


class InputException(KiteError):
    error_type = "InputException"


class OrderException(KiteError):
    error_type = "OrderException"


class MarginException(KiteError):
    error_type = "MarginException"


class HoldingException(KiteError):
    error_type = "HoldingException"


class NetworkException(KiteError):
    """The OMS could not be reached, or a 429 (rate limit)."""

    error_type = "NetworkException"


class DataException(KiteError):
    error_type = "DataException"


class TooManyRequests(NetworkException):
    """HTTP 429: Kite's API gateway refused the call before the OMS saw it."""


class NotSent(NetworkException):
    """The connection never opened (refused, unreachable, connect timeout): the broker got nothing."""


class ClientClosed(KiteError):
    """The call was about to leave through a client already closed — replaced by a client of the user's new api_key
    (``KiteConnection.successor``, which takes the call), or gone with the user's session: nothing was sent."""

    error_type = "ClientClosed"

    def __init__(self, message: str, status: int = 503, error_type: str | None = None) -> None:
        super().__init__(message, status, error_type)


class OrderUnknown(NetworkException):
    """A placement whose answer was lost (timeout, dropped connection, 5xx) and whose tag was not in the
    order book when looked up: the broker may still take it. It is never sent again; reconciliation
    adopts it by its tag if it shows up."""

    def __init__(self, message: str, status: int = 504, error_type: str | None = None, tag: str | None = None) -> None:
        super().__init__(message, status, error_type)
        self.tag = tag


class EgressUnavailable(KiteError):
    """The user's static-IP egress cannot be used now: the order is refused, never sent another way."""

    error_type = "EgressUnavailable"


class HoldingAuthorisationRequired(HoldingException):
    """HTTP 428: selling demat holdings needs the depository's eDIS/TPIN authorisation first
    (``KiteClient.authorise_holdings`` starts it; the user completes it on the depository's page)."""


BY_TYPE: dict[str, type[KiteError]] = {
    cls.error_type: cls
    for cls in (GeneralException, TokenException, PermissionException, UserException, InputException,
                OrderException, MarginException, HoldingException, NetworkException, DataException)
}
BY_TYPE["PermissionError"] = PermissionException  # gokiteconnect's spelling


def from_response(status: int, body: dict | None) -> KiteError:
    body = body or {}
    error_type = str(body.get("error_type") or "GeneralException")
    message = str(body.get("message") or f"HTTP {status}")
    if status == 429:
        return TooManyRequests(message, status, error_type)
    if status == 428:
        return HoldingAuthorisationRequired(message, status, error_type)
    return BY_TYPE.get(error_type, GeneralException)(message, status, error_type)
