"""Kite's enumerations (values are Kite's strings on the wire) and constrained scalar types."""

from __future__ import annotations

import enum
from typing import Annotated, Literal

from msgspec import Meta


class Exchange(enum.StrEnum):
    NSE = "NSE"
    BSE = "BSE"
    NFO = "NFO"
    BFO = "BFO"
    CDS = "CDS"
    BCD = "BCD"
    MCX = "MCX"


class TransactionType(enum.StrEnum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def opposite(self) -> "TransactionType":
        return TransactionType.SELL if self is TransactionType.BUY else TransactionType.BUY


class OrderType(enum.StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    SL = "SL"
    SL_M = "SL-M"


class Product(enum.StrEnum):
    CNC = "CNC"
    MIS = "MIS"
    NRML = "NRML"
    MTF = "MTF"


class Variety(enum.StrEnum):
    REGULAR = "regular"
    AMO = "amo"
    CO = "co"
    ICEBERG = "iceberg"
    AUCTION = "auction"


class Validity(enum.StrEnum):
    DAY = "DAY"
    IOC = "IOC"
    TTL = "TTL"


class TickMode(enum.StrEnum):
    LTP = "ltp"
    QUOTE = "quote"
    FULL = "full"


class OrderStatus(enum.StrEnum):
    """Kite's order statuses, transient ones included (kite-connect.md §4.6)."""

    PUT_ORDER_REQ_RECEIVED = "PUT ORDER REQ RECEIVED"
    AMO_REQ_RECEIVED = "AMO REQ RECEIVED"
    VALIDATION_PENDING = "VALIDATION PENDING"
    OPEN_PENDING = "OPEN PENDING"
    OPEN = "OPEN"
    TRIGGER_PENDING = "TRIGGER PENDING"
    MODIFY_VALIDATION_PENDING = "MODIFY VALIDATION PENDING"
    MODIFY_PENDING = "MODIFY PENDING"
    MODIFIED = "MODIFIED"
    NOT_MODIFIED = "NOT MODIFIED"
    CANCEL_PENDING = "CANCEL PENDING"
    UPDATE = "UPDATE"
    COMPLETE = "COMPLETE"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES

    @classmethod
    def parse(cls, value: str) -> "OrderStatus":
        """Kite's status string to the enum; ``CANCELLED AMO`` and friends map to their base."""
        try:
            return cls(value)
        except ValueError:
            for status in (cls.CANCELLED, cls.REJECTED, cls.COMPLETE):
                if value.startswith(status.value):
                    return status
            raise


TERMINAL_STATUSES = frozenset({OrderStatus.COMPLETE, OrderStatus.CANCELLED, OrderStatus.REJECTED})


class KillSwitchState(enum.StrEnum):
    """Graded trading state of one user (NautilusTrader's TradingState, driven by P&L)."""

    ACTIVE = "ACTIVE"  # everything allowed
    REDUCING = "REDUCING"  # past the warning threshold: only exits
    HALTED = "HALTED"  # past the daily loss limit: nothing new, strategies deactivated


TRADING_STATES = {KillSwitchState.ACTIVE: "Trading allowed", KillSwitchState.REDUCING: "Reducing only",
                  KillSwitchState.HALTED: "Halted"}


def trading_state(state: object) -> str:
    """The kill switch's state as a trader reads it ("ACTIVE" reads as tripped: it means trading is allowed)."""
    return TRADING_STATES.get(str(state or ""), "Unknown")


# --------------------------------------------------------------------------------------------
# Constrained scalar types

UserId = Annotated[str, Meta(pattern=r"^[A-Z0-9]{2,10}$", description="Zerodha user id")]
Token = Annotated[int, Meta(ge=0, lt=2**32, description="Kite instrument_token")]
Qty = Annotated[int, Meta(ge=0)]
Paise = int
KiteTag = Annotated[str, Meta(max_length=20, pattern=r"^[A-Za-z0-9]*$")]
Interval = Literal["minute", "3minute", "5minute", "10minute", "15minute", "30minute", "60minute", "day"]

INTERVAL_SECONDS: dict[str, int] = {
    "minute": 60,
    "3minute": 180,
    "5minute": 300,
    "10minute": 600,
    "15minute": 900,
    "30minute": 1800,
    "60minute": 3600,
    "day": 86400,
}
