"""The paper broker's records: orders (with Kite's JSON shape), trades, position books, holdings and
accounts. Money is integer paise; ``as_kite`` shows rupees like Kite."""

from __future__ import annotations

from dataclasses import dataclass, field

from kite_sim.depository import Depository
from kite_sim.errors import KiteError
from kite_sim.instruments import Instrument

TERMINAL = {"COMPLETE", "CANCELLED", "REJECTED"}
MAX_MODIFICATIONS = 25


OrderError = KiteError  # requests Kite refuses synchronously (HTTP 4xx)


def paise(rupees: float) -> int:
    return int(round(rupees * 100))


def rupees(p: int) -> float:
    return round(p / 100, 2)


@dataclass
class OrderSpec:
    """What an order asks for, as validated (money in paise)."""

    variety: str
    inst: Instrument
    transaction_type: str
    order_type: str
    product: str
    quantity: int
    price: int
    trigger_price: int
    validity: str
    tag: str | None
    market_protection: float


@dataclass
class Order(OrderSpec):
    """An order in the book: its request (modifications change it) and what became of it."""

    order_id: str
    user_id: str
    status: str = "PUT ORDER REQ RECEIVED"
    status_message: str | None = None
    filled_quantity: int = 0
    filled_value: int = 0  # paise * qty
    cancelled_quantity: int = 0
    order_timestamp: str = ""
    exchange_timestamp: str | None = None
    exchange_order_id: str | None = None
    modifications: int = 0
    history: list[dict] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    partial_then_cancel: bool = False
    meta: dict = field(default_factory=dict)  # {"gtt": id} on an order a GTT placed

    @property
    def pending_quantity(self) -> int:
        return self.quantity - self.filled_quantity - self.cancelled_quantity if self.status not in TERMINAL else 0

    @property
    def average_price(self) -> int:
        return self.filled_value // self.filled_quantity if self.filled_quantity else 0

    def as_kite(self, user_id: str) -> dict:
        return {
            "account_id": user_id, "placed_by": user_id, "order_id": self.order_id,
            "exchange_order_id": self.exchange_order_id, "parent_order_id": None, "status": self.status,
            "status_message": self.status_message, "status_message_raw": self.status_message,
            "order_timestamp": self.order_timestamp, "exchange_update_timestamp": self.exchange_timestamp,
            "exchange_timestamp": self.exchange_timestamp, "variety": self.variety, "modified": self.modifications > 0,
            "exchange": self.inst.exchange, "tradingsymbol": self.inst.tradingsymbol,
            "instrument_token": self.inst.instrument_token, "order_type": self.order_type,
            "transaction_type": self.transaction_type, "validity": self.validity, "validity_ttl": 0,
            "product": self.product, "quantity": self.quantity, "disclosed_quantity": 0,
            "price": rupees(self.price), "trigger_price": rupees(self.trigger_price),
            "average_price": rupees(self.average_price), "filled_quantity": self.filled_quantity,
            "pending_quantity": self.pending_quantity, "cancelled_quantity": self.cancelled_quantity,
            "market_protection": self.market_protection, "meta": dict(self.meta), "tag": self.tag,
            "tags": list(self.tags) + ([self.tag] if self.tag else []), "guid": f"{self.order_id[-8:]}",
        }


@dataclass
class Trade:
    trade_id: str
    order: Order
    quantity: int
    price: int
    timestamp: str

    def as_kite(self) -> dict:
        o = self.order
        return {"trade_id": self.trade_id, "order_id": o.order_id, "exchange_order_id": o.exchange_order_id,
                "exchange": o.inst.exchange, "tradingsymbol": o.inst.tradingsymbol,
                "instrument_token": o.inst.instrument_token, "product": o.product,
                "average_price": rupees(self.price), "quantity": self.quantity,
                "transaction_type": o.transaction_type, "fill_timestamp": self.timestamp,
                "order_timestamp": self.timestamp[11:], "exchange_timestamp": self.timestamp}


@dataclass
class PositionBook:
    """One (instrument, product) position: today's fills plus what was carried in, the carried quantity
    counted at its cost (so ``pnl`` runs since cost, as Kite's) and remembered at the previous close (so
    ``m2m`` runs since that close)."""

    buy_quantity: int = 0
    buy_value: int = 0  # paise
    sell_quantity: int = 0
    sell_value: int = 0
    overnight_quantity: int = 0  # signed quantity carried in from the previous day ...
    overnight_price: int = 0  # ... that day's close (paise)
    overnight_average: int = 0  # ... and its cost (paise); an older snapshot booked it at the close

    def __post_init__(self) -> None:
        if self.overnight_quantity and not self.overnight_average:
            self.overnight_average = self.overnight_price

    @property
    def quantity(self) -> int:
        return self.buy_quantity - self.sell_quantity

    def _carried(self, price: int) -> tuple[int, int]:
        """(bought, sold) value of the carried quantity at ``price``."""
        on = self.overnight_quantity
        return max(on, 0) * price, max(-on, 0) * price

    def marked(self) -> PositionBook:
        """The book with the carried quantity at the previous close: Kite's ``buy_m2m`` / ``sell_m2m``,
        whose P&L is the day's ``m2m``."""
        cost_b, cost_s = self._carried(self.overnight_average)
        close_b, close_s = self._carried(self.overnight_price)
        return PositionBook(self.buy_quantity, self.buy_value - cost_b + close_b,
                            self.sell_quantity, self.sell_value - cost_s + close_s)

    def today(self) -> PositionBook:
        """Only today's fills (Kite's ``day_*`` fields and the ``day`` positions)."""
        on = self.overnight_quantity
        cost_b, cost_s = self._carried(self.overnight_average)
        return PositionBook(self.buy_quantity - max(on, 0), self.buy_value - cost_b,
                            self.sell_quantity - max(-on, 0), self.sell_value - cost_s)


@dataclass
class Holding:
    quantity: int  # settled (in the demat account)
    average: int  # paise
    t1_quantity: int = 0  # bought on the previous trading day, awaiting T+1 settlement

    @property
    def total(self) -> int:
        return self.quantity + self.t1_quantity


@dataclass
class Account:
    user_id: str
    opening_balance: int  # paise
    orders: dict[str, Order] = field(default_factory=dict)
    trades: list[Trade] = field(default_factory=list)
    positions: dict[tuple[int, str], PositionBook] = field(default_factory=dict)
    holdings: dict[int, Holding] = field(default_factory=dict)  # by instrument token
    gtts: dict = field(default_factory=dict)  # trigger id -> kite_sim.gtt.Trigger
    depository: Depository = field(default_factory=Depository)  # eDIS authorisations of delivery sells
