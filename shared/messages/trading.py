"""Signals, orders, positions and risk: what the strategy and execution workers exchange."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from msgspec import Meta, Struct, field

from shared.messages.vocabulary import (
    Exchange, KillSwitchState, KiteTag, OrderStatus, OrderType, Paise, Product, TransactionType, UserId,
    Validity, Variety,
)


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
    trigger_price: Paise | None = None  # an SL / SL-M entry's own trigger (a trader's stop order)


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
    kind: str = "entry"  # what kta placed it as
    role: str = ""  # a protective order's role now: "stop_loss", or "target" once its stop became a LIMIT at the target
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


OutcomeKind = Literal[
    "accepted",         # risk accepted the signal; orders are going to the broker
    "refused",          # risk (or the hedge validator) refused it: code + reason; nothing was placed
    "filled",           # a fill of one of the strategy's own entry / exit orders
    "protective_fill",  # its stop-loss or target filled
    "cancelled",        # an order of the signal ended without (full) fill; quantity = the unfilled part
    "rejected",         # the broker rejected an order of the signal (its message in reason)
    "rolled_back",      # a multi-leg group failed and what filled was squared off
    "external",         # the broker's book moved without a kta order: MIS auto square-off, expiry
                        # settlement, a manual trade in Kite. reason says which
]


class StrategyOutcome(Struct, frozen=True, kw_only=True):
    """What became of a strategy's signal, published by the execution worker on
    ``kta.u.<user>.outcomes`` (JetStream ``KTA_OUTCOMES``) and consumed by the strategy worker.

    ``position`` is authoritative: the strategy's net signed quantity in this instrument after the
    event, derived from journaled fills only. A strategy sets its position to it (idempotent under
    redelivery) and never books a position when it merely emits a signal. Fill events carry the
    fill's own ``quantity`` (unsigned, with ``transaction_type``) and ``price``; ``seq`` orders the
    outcomes of one user (monotonic per user, from the journal) so a consumer can drop stale ones.
    """

    user_id: UserId
    strategy_id: str
    kind: OutcomeKind
    seq: int = 0
    signal_id: str = ""  # the Signal / SignalGroup id ("" for an external adjustment)
    group_id: str = ""
    order_kind: str = ""  # entry, exit, stop_loss, target, rollback, flatten, external, manual
    exchange: str = ""
    tradingsymbol: str = ""
    instrument_token: int = 0
    transaction_type: TransactionType | None = None
    quantity: int = 0
    price: Paise = 0
    position: int = 0  # the strategy's net quantity in the instrument after this event
    average_price: Paise = 0  # of that position (0 when flat)
    code: str = ""  # refusal / rejection code (a RiskCode, HEDGE_MISMATCH, the broker's error type)
    reason: str = ""
    trade_id: str = ""
    ts: int = 0  # epoch ns


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


class Guard(Struct, frozen=True, kw_only=True):
    """One thing at the broker that protects a position: a GTT OCO (``gtt``: stop and target trigger
    prices), the day SL order (``sl``), or the order a GTT leg fired / the stop turned into a LIMIT at
    the target (``order``)."""

    kind: Literal["gtt", "sl", "order"]
    id: str  # the GTT's id or the order's id ("" while it is being placed)
    status: str  # the broker's word: active / TRIGGER PENDING / OPEN ...; "unread" when the GTT book was not read
    quantity: int  # what it would close
    stop: Paise = 0  # the stop's trigger (a GTT's stop leg, an SL's trigger)
    target: Paise = 0  # a GTT's target leg
    price: Paise = 0  # an order's limit


# long: a bought option (its premium is all it can lose); hedged: a short option its strategy's long options cover
ProtectionState = Literal["protected", "partial", "unprotected", "closing", "long", "hedged"]


class ProtectionStatus(Struct, frozen=True, kw_only=True):
    """What protects one strategy's open position right now (the execution worker's view): ``covered``
    is the quantity the working guards would close; ``note`` says in words why it is not protected."""

    strategy_id: str
    exchange: str
    tradingsymbol: str
    product: str
    quantity: int  # held by this strategy, signed
    stop: Paise = 0  # the plan (0: the strategy set none)
    target: Paise = 0  # the plan; an MIS target is watched on ticks, a CNC/NRML one is the GTT's leg
    guards: list[Guard] = field(default_factory=list)
    covered: int = 0
    state: ProtectionState = "unprotected"
    note: str = ""
    authorise: str = ""  # the depository's link while its GTT stop cannot sell without today's eDIS/TPIN authorisation


class PositionSnapshot(Struct, frozen=True, kw_only=True):
    user_id: UserId
    ts: int  # when kta took it (epoch ns, kta's clock: of two snapshots the later ``ts`` is the newer)
    positions: list[Position]
    day_pnl: Paise = 0
    realised: Paise = 0
    unrealised: Paise = 0
    exposure: Paise = 0
    source: Literal["broker", "local"] = "broker"
    mismatches: list[str] = field(default_factory=list)
    protection: list[ProtectionStatus] = field(default_factory=list)  # every open position kta tracks
    exchange_ts: int = 0  # the same moment on the exchange's clock (epoch ns; 0 = not heard yet): the P&L chart's time
    # kta's delivery positions carried into the holdings (not in the broker's day positions), marked at the last
    # price, P&L since cost, per strategy; not counted in the day's figures above (Kite's m2m of the positions)
    carried: list[Position] = field(default_factory=list)


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
    # the loss the switch counts against max_daily_loss (≥ 0): -day_pnl, or after a reset the loss since it
    loss: Paise = 0
