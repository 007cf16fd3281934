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

import msgspec
from msgspec import Struct

from shared.messages.money import (  # noqa: F401 - the package's public names
    format_inr,
    group_indian,
    now_ns,
    to_paise,
    to_rupees,
)
from shared.messages.vocabulary import (  # noqa: F401 - the package's public names
    Exchange,
    INTERVAL_SECONDS,
    Interval,
    KillSwitchState,
    KiteTag,
    OrderStatus,
    OrderType,
    Paise,
    Product,
    Qty,
    TERMINAL_STATUSES,
    TRADING_STATES,
    TickMode,
    Token,
    TransactionType,
    UserId,
    Validity,
    Variety,
    trading_state,
)
from shared.messages.market import (  # noqa: F401 - the package's public names
    Bar,
    Depth,
    DepthItem,
    OHLC,
    Tick,
)
from shared.messages.trading import (  # noqa: F401 - the package's public names
    AnySignal,
    BrokerOrderUpdate,
    Guard,
    Leg,
    OrderEvent,
    OrderKind,
    OrderRequest,
    Position,
    PositionSnapshot,
    ProtectionStatus,
    RiskLimits,
    RiskState,
    Signal,
    SignalGroup,
    SignalIntent,
    StrategyOutcome,
    OutcomeKind,
)
from shared.messages.events import (  # noqa: F401 - the package's public names
    Alert,
    AlertKind,
    BrokerEvent,
    BrokerEventKind,
    BrokerSession,
    PartitionHandover,
    WorkerStatus,
)
from shared.messages.backtest import (  # noqa: F401 - the package's public names
    BacktestProgress,
    BacktestSpec,
    BacktestState,
    SweepSpec,
)
from shared.messages.commands import (  # noqa: F401 - the package's public names
    AddStrategy,
    CancelBacktest,
    GetBacktest,
    ListBacktests,
    RunBacktest,
    RunSweep,
    Command,
    Error,
    GetAudit,
    GetCatalog,
    GetExecutionSummary,
    GetJournal,
    GetJournalSummary,
    GetOrders,
    GetTrades,
    GetPositions,
    GetStrategyPositions,
    GetCarried,
    GetRiskLimits,
    GetRiskSummary,
    HaltTrading,
    ModifyOrder,
    CancelOrder,
    OrderChange,
    TraderOrder,
    PlaceOrder,
    SquareOffAll,
    GetSignals,
    GetStatus,
    ListStrategies,
    Ok,
    Reads,
    READS_MAX,
    Reconcile,
    RemoveStrategy,
    is_read,
    READ_VERBS,
    Reply,
    ResetKillSwitch,
    Scan,
    ScanPct,
    SetRiskLimits,
    StartLive,
    StopLive,
    Subscribe,
    Unsubscribe,
    UpdateParams,
)

# Codecs, created once (the fast path)

encoder = msgspec.msgpack.Encoder()


def encode(msg: Struct) -> bytes:
    return encoder.encode(msg)


tick_decoder = msgspec.msgpack.Decoder(Tick)
bar_decoder = msgspec.msgpack.Decoder(Bar)
signal_decoder = msgspec.msgpack.Decoder(AnySignal)
order_event_decoder = msgspec.msgpack.Decoder(OrderEvent)
outcome_decoder = msgspec.msgpack.Decoder(StrategyOutcome)
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
    StrategyOutcome,
    BrokerOrderUpdate,
    Position,
    PositionSnapshot,
    RiskLimits,
    RiskState,
    BrokerSession,
    BrokerEvent,
    WorkerStatus,
    PartitionHandover,
    Alert,
    BacktestSpec,
    SweepSpec,
    BacktestProgress,
    *Command.__args__,  # type: ignore[attr-defined]
    Ok,
    Error,
)
