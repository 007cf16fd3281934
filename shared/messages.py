"""Every message kta sends over NATS, defined once.

Conventions (read before adding a field):
* Field names are Kite Connect's own (tradingsymbol, exchange, transaction_type, quantity, price,
  trigger_price, order_type, product, validity, tag) so nothing is renamed at the edges.
* Money inside kta is **integer paise** (``price=2450005`` is ₹24,500.05) on every order, fill,
  position, P&L and risk message. Only ``Tick`` carries floats in rupees, exactly as Kite's binary
  feed is decoded, because indicators work in floats. Convert with ``to_paise`` / ``to_rupees``.
* Times are integers: epoch seconds for exchange timestamps (``exchange_timestamp``), epoch
  nanoseconds for kta's own stamps (``created_at``, ``received_at``, ``ts``) so latency can be traced.
* Messages that share a subject form a tagged union (``tag`` field ``type``) so one decoder per
  subject returns the right class.
"""

from __future__ import annotations

import enum
import time
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Annotated, Any, Literal, Union

import msgspec
from msgspec import Meta, Struct, field

# --------------------------------------------------------------------------------------------
# Money helpers


def to_paise(rupees: float | str | Decimal) -> int:
    """Rupees (float, str or Decimal) to integer paise, rounding half-even at the paisa."""
    return int((Decimal(str(rupees)) * 100).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def to_rupees(paise: int) -> Decimal:
    """Integer paise to an exact Decimal of rupees (for display and for Kite's form fields)."""
    return (Decimal(paise) / 100).quantize(Decimal("0.01"))


def group_indian(digits: str) -> str:
    """``1234567`` → ``12,34,567``: the last three digits, then pairs."""
    if len(digits) <= 3:
        return digits
    head, tail = digits[:-3], digits[-3:]
    pairs = []
    while len(head) > 2:
        pairs.insert(0, head[-2:])
        head = head[:-2]
    return ",".join([head, *pairs, tail])


def format_inr(paise: int, symbol: str = "₹", sign_joiner: str = "") -> str:
    """Integer paise as a trader reads it: ``-₹52,260.00`` (Indian digit grouping, exact)."""
    sign = "-" + sign_joiner if paise < 0 else ""
    whole, frac = divmod(abs(paise), 100)
    return f"{sign}{symbol}{group_indian(str(whole))}.{frac:02d}"


def now_ns() -> int:
    return time.time_ns()


# --------------------------------------------------------------------------------------------
# Kite enumerations (values are Kite's strings on the wire)


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

# --------------------------------------------------------------------------------------------
# Market data


class OHLC(Struct, array_like=True, gc=False):
    open: float = 0.0
    high: float = 0.0
    low: float = 0.0
    close: float = 0.0


class DepthItem(Struct, array_like=True, gc=False):
    quantity: int = 0
    price: float = 0.0
    orders: int = 0


class Depth(Struct, array_like=True, gc=False):
    buy: list[DepthItem] = field(default_factory=list)
    sell: list[DepthItem] = field(default_factory=list)


class Tick(Struct, array_like=True, gc=False):
    """One decoded packet of Kite's binary feed (field names as pykiteconnect's).

    Prices are rupees (float); ``change`` is percent vs the previous close; timestamps are
    epoch seconds of the exchange; ``received_at`` is kta's decode time in epoch ns.
    """

    instrument_token: int
    mode: str
    tradable: bool
    last_price: float
    last_traded_quantity: int = 0
    average_traded_price: float = 0.0
    volume_traded: int = 0
    total_buy_quantity: int = 0
    total_sell_quantity: int = 0
    ohlc: OHLC | None = None
    change: float = 0.0
    last_trade_time: int | None = None
    oi: int = 0
    oi_day_high: int = 0
    oi_day_low: int = 0
    exchange_timestamp: int | None = None
    depth: Depth | None = None
    received_at: int = 0


class Bar(Struct, frozen=True, array_like=True, gc=False):
    """A completed candle; ``start`` is the bar's open time in epoch seconds (IST-aligned).

    ``after_gap`` is True when a feed gap was reported inside the bar's span, so a strategy can
    tell the bar is built from incomplete data.
    """

    instrument_token: int
    interval: str
    start: int
    open: float
    high: float
    low: float
    close: float
    volume: int = 0
    oi: int = 0
    after_gap: bool = False


# --------------------------------------------------------------------------------------------
# Signals


class Leg(Struct, frozen=True, kw_only=True):
    """One leg of a multi-leg SignalGroup. ``quantity`` is in units (a multiple of lot_size)."""

    exchange: Exchange
    tradingsymbol: str
    instrument_token: int
    transaction_type: TransactionType
    quantity: Annotated[int, Meta(gt=0)]
    product: Product = Product.NRML
    order_type: OrderType = OrderType.LIMIT
    price: Paise = 0
    trigger_price: Paise = 0
    lot_size: Annotated[int, Meta(ge=1)] = 1
    is_hedge: bool = False
    option_type: Literal["CE", "PE", "FUT", "EQ"] = "EQ"
    strike: Paise = 0
    expiry: str = ""  # yyyy-mm-dd


SignalIntent = Literal["entry", "exit"]


class Signal(Struct, frozen=True, kw_only=True, tag="signal", tag_field="type"):
    """A single-instrument trade idea from a strategy. Prices in paise; 0 means market."""

    id: str
    user_id: UserId
    strategy_id: str
    strategy: str
    exchange: Exchange
    tradingsymbol: str
    instrument_token: int
    transaction_type: TransactionType
    quantity: Annotated[int, Meta(gt=0)]
    product: Product = Product.MIS
    order_type: OrderType = OrderType.MARKET
    price: Paise = 0
    stop_loss: Paise | None = None
    target: Paise | None = None
    intent: SignalIntent = "entry"
    confidence: Annotated[float, Meta(ge=0.0, le=1.0)] = 0.5
    reason: str = ""
    tick_ts: int = 0  # exchange timestamp (epoch s) of the triggering tick
    tick_received_at: int = 0  # epoch ns the triggering tick was decoded (latency tracing)
    created_at: int = 0  # epoch ns
    metadata: dict[str, Any] = field(default_factory=dict)


class SignalGroup(Struct, frozen=True, kw_only=True, tag="signal_group", tag_field="type"):
    """All legs of one option structure, placed atomically by the execution worker."""

    id: str
    user_id: UserId
    strategy_id: str
    strategy: str
    structure: str  # iron_condor, straddle, strangle, bull_call_spread, bear_put_spread, ...
    underlying: str
    legs: list[Leg]
    intent: SignalIntent = "entry"
    confidence: Annotated[float, Meta(ge=0.0, le=1.0)] = 0.5
    reason: str = ""
    stop_loss: Paise | None = None  # on the group's net premium
    target: Paise | None = None
    tick_ts: int = 0
    tick_received_at: int = 0
    created_at: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)


AnySignal = Union[Signal, SignalGroup]

# --------------------------------------------------------------------------------------------
# Orders


OrderKind = Literal["entry", "stop_loss", "target", "exit", "rollback", "flatten", "adopted"]


class OrderRequest(Struct, frozen=True, kw_only=True):
    """What the execution engine asks the broker for. ``tag`` is derived from the signal id."""

    user_id: UserId
    variety: Variety = Variety.REGULAR
    exchange: Exchange
    tradingsymbol: str
    instrument_token: int = 0
    transaction_type: TransactionType
    order_type: OrderType
    quantity: Annotated[int, Meta(gt=0)]
    product: Product
    price: Paise = 0
    trigger_price: Paise = 0
    validity: Validity = Validity.DAY
    market_protection: int = 0  # percent, -1 = automatic; required for MARKET since 2026
    tag: KiteTag = ""
    signal_id: str = ""
    group_id: str = ""
    leg_index: int = -1
    kind: OrderKind = "entry"


class OrderEvent(Struct, frozen=True, kw_only=True):
    """A change of one order as kta knows it, published on ``kta.u.<user>.orders``.

    ``status`` is Kite's; ``state`` is kta's own order state machine (which adds SUBMITTING,
    UNKNOWN and the like for outcomes the broker has not told us yet).
    """

    user_id: UserId
    order_id: str  # broker order id ("" while unknown)
    tag: str = ""
    signal_id: str = ""
    group_id: str = ""
    kind: str = "entry"
    state: str = ""
    status: OrderStatus | None = None
    status_message: str = ""
    exchange: str = ""
    tradingsymbol: str = ""
    instrument_token: int = 0
    transaction_type: TransactionType = TransactionType.BUY
    order_type: OrderType = OrderType.MARKET
    product: Product = Product.MIS
    variety: Variety = Variety.REGULAR
    quantity: int = 0
    filled_quantity: int = 0
    pending_quantity: int = 0
    cancelled_quantity: int = 0
    price: Paise = 0
    trigger_price: Paise = 0
    average_price: Paise = 0
    order_timestamp: str = ""  # Kite's "yyyy-mm-dd hh:mm:ss" (IST)
    exchange_timestamp: str = ""
    ts: int = 0  # epoch ns kta emitted the event


class BrokerOrderUpdate(Struct, frozen=True, kw_only=True):
    """A raw order update from the broker's WebSocket, relayed verbatim (JetStream)."""

    user_id: UserId
    received_at: int
    order: dict[str, Any]


# --------------------------------------------------------------------------------------------
# Positions and risk


class Position(Struct, frozen=True, kw_only=True):
    tradingsymbol: str
    exchange: str
    instrument_token: int = 0
    product: str = "MIS"
    quantity: int = 0
    overnight_quantity: int = 0
    multiplier: int = 1
    average_price: Paise = 0
    last_price: Paise = 0
    close_price: Paise = 0
    value: Paise = 0
    pnl: Paise = 0
    m2m: Paise = 0
    realised: Paise = 0
    unrealised: Paise = 0
    buy_quantity: int = 0
    buy_value: Paise = 0
    sell_quantity: int = 0
    sell_value: Paise = 0
    strategy_id: str = ""  # set on locally tracked positions


class PositionSnapshot(Struct, frozen=True, kw_only=True):
    user_id: UserId
    ts: int
    positions: list[Position]
    day_pnl: Paise = 0
    realised: Paise = 0
    unrealised: Paise = 0
    exposure: Paise = 0
    source: Literal["broker", "local"] = "broker"
    mismatches: list[str] = field(default_factory=list)


class RiskLimits(Struct, frozen=True, kw_only=True):
    """Per-user risk limits. Defaults are the original design's (₹ amounts in paise)."""

    max_daily_loss: Annotated[Paise, Meta(gt=0)] = 50_000_00
    warn_daily_loss_pct: Annotated[float, Meta(gt=0, le=100)] = 80.0
    max_position_qty: Annotated[int, Meta(gt=0)] = 100
    max_position_lots: Annotated[int, Meta(gt=0)] = 10
    max_exposure: Annotated[Paise, Meta(gt=0)] = 10_000_000_00
    max_orders_per_minute: Annotated[int, Meta(gt=0)] = 60
    max_open_orders: Annotated[int, Meta(gt=0)] = 50
    max_exposure_per_symbol: Annotated[Paise, Meta(gt=0)] = 5_000_000_00
    max_exposure_per_strategy: Annotated[Paise, Meta(gt=0)] = 5_000_000_00
    max_net_delta: Annotated[float, Meta(gt=0)] = 1_000.0  # per underlying, in units of the underlying
    max_net_vega: Annotated[float, Meta(gt=0)] = 200_000.0  # per underlying, rupees per vol point
    flatten_on_halt: bool = False


class RiskState(Struct, frozen=True, kw_only=True):
    user_id: UserId
    ts: int
    state: KillSwitchState
    day_pnl: Paise = 0
    realised: Paise = 0
    unrealised: Paise = 0
    exposure: Paise = 0
    reason: str = ""
    tripped_at: int = 0
    limits: RiskLimits = field(default_factory=RiskLimits)


# --------------------------------------------------------------------------------------------
# Broker session and connection events


class BrokerSession(Struct, frozen=True, kw_only=True):
    """Value of KV ``kta_broker_sessions`` under the user id; the token is encrypted at rest."""

    user_id: UserId
    api_key: str
    access_token_enc: str  # shared.secrets.encrypt(access_token)
    login_time: str = ""
    expires_at: int = 0  # epoch seconds (next 06:00 IST)
    egress_proxy: str = ""  # per-user static-IP egress (proxy URL) for order endpoints
    egress_local_address: str = ""  # or a local source address


BrokerEventKind = Literal[
    "connected", "disconnected", "reconnecting", "reconnected", "token_expired", "alert", "stopped"
]


class BrokerEvent(Struct, frozen=True, kw_only=True):
    user_id: UserId
    kind: BrokerEventKind
    ts: int
    attempt: int = 0
    gap_start: int = 0  # epoch ns
    gap_end: int = 0
    detail: str = ""

    @property
    def gap_seconds(self) -> float:
        return max(0, self.gap_end - self.gap_start) / 1e9


class WorkerStatus(Struct, frozen=True, kw_only=True):
    """Heartbeat of a process, on ``kta.svc.<service>.status`` and per user on ``kta.u.<user>.status``."""

    service: str
    instance: str
    state: Literal["starting", "ready", "degraded", "stopping"] = "ready"
    ts: int = 0
    user_id: str = ""
    detail: str = ""
    metrics: dict[str, float] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Control commands (request/reply on kta.u.<user>.cmd.<service>.<verb>)


class _Cmd(Struct, frozen=True, kw_only=True, tag_field="type"):
    pass


class AddStrategy(_Cmd, tag="add_strategy"):
    strategy: str  # registry name, e.g. "ema_crossover"
    params: dict[str, Any] = field(default_factory=dict)
    tokens: list[Token] = field(default_factory=list)
    strategy_id: str = ""  # assigned by the worker when empty


class RemoveStrategy(_Cmd, tag="remove_strategy"):
    strategy_id: str


class ListStrategies(_Cmd, tag="list_strategies"):
    pass


class UpdateParams(_Cmd, tag="update_params"):
    strategy_id: str
    params: dict[str, Any]


class GetCatalog(_Cmd, tag="get_catalog"):
    pass


class GetSignals(_Cmd, tag="get_signals"):
    limit: Annotated[int, Meta(ge=1, le=1000)] = 100


class StartLive(_Cmd, tag="start_live"):
    tokens: list[Token] = field(default_factory=list)
    mode: TickMode = TickMode.QUOTE


class StopLive(_Cmd, tag="stop_live"):
    cancel_open_orders: bool = True


class Subscribe(_Cmd, tag="subscribe"):
    tokens: list[Token]
    mode: TickMode = TickMode.QUOTE


class Unsubscribe(_Cmd, tag="unsubscribe"):
    tokens: list[Token]


class ResetKillSwitch(_Cmd, tag="reset_kill_switch"):
    reason: str = "manual reset"


class SetRiskLimits(_Cmd, tag="set_risk_limits"):
    limits: RiskLimits


class GetRiskSummary(_Cmd, tag="get_risk_summary"):
    pass


class GetExecutionSummary(_Cmd, tag="get_execution_summary"):
    pass


class GetJournal(_Cmd, tag="get_journal"):
    day: str = ""  # yyyy-mm-dd; empty = today
    limit: Annotated[int, Meta(ge=1, le=5000)] = 500


class GetJournalSummary(_Cmd, tag="get_journal_summary"):
    day: str = ""


class GetOrders(_Cmd, tag="get_orders"):
    pass


class GetAudit(_Cmd, tag="get_audit"):
    """Why an order was placed and what happened to it (``cmd.journal.audit``)."""

    id: Annotated[str, Meta(min_length=1, max_length=64)]  # broker order id, kta tag, signal or group id


class GetPositions(_Cmd, tag="get_positions"):
    pass


class Reconcile(_Cmd, tag="reconcile"):
    cancel_open_orders: bool = False


class GetStatus(_Cmd, tag="get_status"):
    pass


ScanPct = Annotated[float, Meta(gt=0, le=100)]


class Scan(_Cmd, tag="scan"):
    """Screen instruments by price, volume and indicator conditions (strategy worker). Every
    condition given must hold; rupees are floats here as in Kite's quotes."""

    symbols: Annotated[list[Annotated[str, Meta(pattern=r"^[A-Z]+:[^\s]+$")]], Meta(max_length=500)] = \
        field(default_factory=list)  # EXCHANGE:TRADINGSYMBOL; empty = every NSE equity
    min_price: Annotated[float, Meta(ge=0)] | None = None
    max_price: Annotated[float, Meta(ge=0)] | None = None
    min_volume: Annotated[int, Meta(ge=0)] | None = None
    volume_spike: Annotated[float, Meta(ge=1, le=100)] | None = None  # today's volume / average daily volume
    gap_up_pct: ScanPct | None = None  # open above the previous close by at least this %
    gap_down_pct: ScanPct | None = None
    rsi_below: ScanPct | None = None  # RSI of daily closes (today's last price included)
    rsi_above: ScanPct | None = None
    rsi_period: Annotated[int, Meta(ge=2, le=100)] = 14
    near_high_pct: Annotated[float, Meta(ge=0, le=100)] | None = None  # within this % of the 52-week high
    near_low_pct: Annotated[float, Meta(ge=0, le=100)] | None = None
    lookback_days: Annotated[int, Meta(ge=10, le=400)] = 365  # calendar days of daily candles ("52 weeks")
    volume_days: Annotated[int, Meta(ge=2, le=100)] = 20  # days in the average daily volume
    sort_by: Literal["volume_ratio", "change_pct", "gap_pct", "rsi", "symbol"] = "volume_ratio"
    limit: Annotated[int, Meta(ge=1, le=500)] = 50


Command = Union[
    AddStrategy,
    RemoveStrategy,
    ListStrategies,
    UpdateParams,
    GetCatalog,
    GetSignals,
    StartLive,
    StopLive,
    Subscribe,
    Unsubscribe,
    ResetKillSwitch,
    SetRiskLimits,
    GetRiskSummary,
    GetExecutionSummary,
    GetJournal,
    GetJournalSummary,
    GetAudit,
    GetOrders,
    GetPositions,
    Reconcile,
    GetStatus,
    Scan,
]


class Ok(Struct, frozen=True, kw_only=True, tag="ok", tag_field="type"):
    service: str = ""
    data: Any = None


class Error(Struct, frozen=True, kw_only=True, tag="error", tag_field="type"):
    """A refused command. ``code`` is machine-readable; ``field`` names the bad input if any."""

    code: str
    message: str
    field: str | None = None
    service: str = ""


Reply = Union[Ok, Error]

# --------------------------------------------------------------------------------------------
# Codecs, created once (the fast path)

encoder = msgspec.msgpack.Encoder()


def encode(msg: Struct) -> bytes:
    return encoder.encode(msg)


tick_decoder = msgspec.msgpack.Decoder(Tick)
bar_decoder = msgspec.msgpack.Decoder(Bar)
signal_decoder = msgspec.msgpack.Decoder(AnySignal)
order_event_decoder = msgspec.msgpack.Decoder(OrderEvent)
command_decoder = msgspec.msgpack.Decoder(Command)
reply_decoder = msgspec.msgpack.Decoder(Reply)

ALL_MESSAGE_TYPES: tuple[type[Struct], ...] = (
    Tick,
    Bar,
    Leg,
    Signal,
    SignalGroup,
    OrderRequest,
    OrderEvent,
    BrokerOrderUpdate,
    Position,
    PositionSnapshot,
    RiskLimits,
    RiskState,
    BrokerSession,
    BrokerEvent,
    WorkerStatus,
    *Command.__args__,  # type: ignore[attr-defined]
    Ok,
    Error,
)
