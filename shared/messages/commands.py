"""Control commands (request/reply on ``kta.u.<user>.cmd.<service>.<verb>``) and their replies."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from msgspec import Meta, Struct, field

from shared.messages.backtest import BacktestSpec, SweepSpec
from shared.messages.vocabulary import Exchange, OrderType, Product, TickMode, Token, TransactionType
from shared.messages.trading import RiskLimits


READS_MAX = 32  # reads in one ``Reads``


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
    """Stop trading. Open positions stay protected by their stop-loss at the broker (``protect``, the
    default: a position without one gets a stop ``KTA_DEFAULT_STOP_PCT`` away) or are closed
    (``square_off``); either way no position is left unprotected."""

    cancel_open_orders: bool = True  # entries and exits still working (never the stop-losses)
    positions: Literal["protect", "square_off"] = "protect"


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


class GetRiskLimits(_Cmd, tag="get_risk_limits"):
    """The user's limits in force (``cmd.risk.get_risk_limits``): ``{"limits", "custom", "defaults"}``."""


class HaltTrading(_Cmd, tag="halt"):
    """The manual kill switch (``cmd.risk.halt``): HALTED now, as a daily-loss trip would."""

    reason: Annotated[str, Meta(min_length=1, max_length=200)] = "manual halt"


class SquareOffAll(_Cmd, tag="square_off"):
    """Cancel every open order, stop-losses included, then close every position (``cmd.execution.square_off``)."""

    reason: Annotated[str, Meta(min_length=1, max_length=200)] = "square off all"


class TraderOrder(Struct, frozen=True, kw_only=True):
    """A trader's own order as the trader states it: the fields of ``PlaceOrder`` and the body of the
    gateway's ``POST /api/orders`` (one definition for both). Prices in paise."""

    exchange: Exchange
    tradingsymbol: Annotated[str, Meta(min_length=1, max_length=40)]
    transaction_type: TransactionType
    quantity: Annotated[int, Meta(gt=0)]  # units (lots × lot size for F&O)
    product: Product = Product.MIS
    order_type: OrderType = OrderType.MARKET
    price: Annotated[int, Meta(ge=0)] = 0
    stop_loss: Annotated[int, Meta(gt=0)] | None = None
    target: Annotated[int, Meta(gt=0)] | None = None
    intent: Literal["entry", "exit"] = "entry"
    strategy_id: Annotated[str, Meta(min_length=1, max_length=64)] = "manual"
    client_id: Annotated[str, Meta(max_length=40, pattern=r"^[A-Za-z0-9_-]*$")] = ""
    trigger_price: Annotated[int, Meta(gt=0)] | None = None  # the order's own trigger (SL / SL-M)


class PlaceOrder(_Cmd, TraderOrder, tag="place_order"):
    """A trader's own order (``cmd.execution.place_order``), through the same risk checks and protection
    as a strategy's: ``intent`` exit closes (at most) what ``strategy_id`` holds; a stop / target
    protects an entry. An SL / SL-M order waits at the broker for ``trigger_price`` (its protection
    follows its fill, like any entry's). ``client_id`` makes a retry the same order."""


class OrderChange(Struct, frozen=True, kw_only=True):
    """What a modify may change: the fields of ``ModifyOrder`` and the body of the gateway's
    ``PATCH /api/orders/{tag}``."""

    quantity: Annotated[int, Meta(gt=0)] | None = None
    price: Annotated[int, Meta(gt=0)] | None = None
    trigger_price: Annotated[int, Meta(gt=0)] | None = None
    order_type: OrderType | None = None


class ModifyOrder(_Cmd, OrderChange, tag="modify_order"):
    """Change an open kta order (``cmd.execution.modify_order``) by its tag or broker order id. A
    stop-loss's trigger moves the position's stop; its quantity follows the position and is not set here."""

    tag: Annotated[str, Meta(min_length=1, max_length=40)]


class CancelOrder(_Cmd, tag="cancel_order"):
    """Cancel an open kta order (``cmd.execution.cancel_order``) by its tag or broker order id; a
    position's stop-loss is not cancelled this way (exit or square off instead)."""

    tag: Annotated[str, Meta(min_length=1, max_length=40)]


class GetExecutionSummary(_Cmd, tag="get_execution_summary"):
    day: str = ""  # yyyy-mm-dd: that day's orders; empty = every order journaled
    timings: bool = False  # also each recent signal's order: [tag, tick, handed, budget wait, broker wait, arrived,
    # locked, decided, stored in its stream] in ns (shared/kite/waits.py)


class GetJournal(_Cmd, tag="get_journal"):
    day: str = ""  # yyyy-mm-dd; empty = today
    limit: Annotated[int, Meta(ge=1, le=5000)] = 500


class GetJournalSummary(_Cmd, tag="get_journal_summary"):
    day: str = ""


PageLimit = Annotated[int, Meta(ge=0, le=201)]
Cursor = Annotated[str, Meta(max_length=200)]
Day = Annotated[str, Meta(pattern=r"^(\d{4}-\d{2}-\d{2}|all)?$")]


class GetOrders(_Cmd, tag="get_orders"):
    """The journal's orders. ``limit`` 0: every order of the day as a list (the dashboard panel); else
    one page, newest first, ``{"items": [...], "next": cursor | None}`` — pass ``next`` back as ``before``
    for the older page (keyset on (created_ts, tag): new orders never shift a page). Filters: ``status``
    ("open" = not final, or a Kite status / kta state), ``strategy_id``, ``symbol`` (tradingsymbol),
    ``day`` (yyyy-mm-dd; "" = today, "all" = every day)."""

    limit: PageLimit = 0
    before: Cursor = ""
    status: Annotated[str, Meta(max_length=32)] = ""
    strategy_id: Annotated[str, Meta(max_length=64)] = ""
    symbol: Annotated[str, Meta(max_length=64)] = ""
    day: Day = ""


class GetTrades(_Cmd, tag="get_trades"):
    """The journal's fills, one page newest first (keyset on (fill_timestamp, rowid)), as GetOrders:
    ``{"items", "next", "today"}`` (``today``: the worker's trading day now, on the exchange's clock); filters
    ``strategy_id``, ``symbol``, ``side`` (BUY/SELL), ``day`` ("" = today, "all")."""

    limit: Annotated[int, Meta(ge=1, le=201)] = 50
    before: Cursor = ""
    strategy_id: Annotated[str, Meta(max_length=64)] = ""
    symbol: Annotated[str, Meta(max_length=64)] = ""
    side: Annotated[str, Meta(pattern=r"^(BUY|SELL)?$")] = ""
    day: Day = ""


class GetAudit(_Cmd, tag="get_audit"):
    """Why an order was placed and what happened to it (``cmd.journal.audit``)."""

    id: Annotated[str, Meta(min_length=1, max_length=64)]  # broker order id, kta tag, signal or group id


class GetPositions(_Cmd, tag="get_positions"):
    pass


class GetStrategyPositions(_Cmd, tag="strategy_positions"):
    """Every strategy's positions from the execution journal's fills (``cmd.execution.strategy_positions``):
    a restarted strategy worker rebuilds from it. Reply ``{"seq": last outcome seq, "positions": [...]}``."""

    strategy_id: str = ""  # one strategy, or all


class GetCarried(_Cmd, tag="get_carried"):
    """What each strategy held when ``day`` began (the net of its journaled fills of earlier days; "" = the
    worker's today): the day's P&L panel opens its books with them. Reply ``{"day", "positions": [{strategy_id,
    exchange, tradingsymbol, quantity, average_price}]}`` (manual fills under strategy_id "")."""

    day: Day = ""


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


class RunBacktest(_Cmd, tag="run_backtest"):
    """Start a backtest (strategy worker, ``cmd.backtest.run_backtest``); reply ``{"backtest_id"}``."""

    spec: BacktestSpec


class RunSweep(_Cmd, tag="run_sweep"):
    """Start a parameter sweep / walk-forward; reply ``{"backtest_id"}`` (the sweep's id)."""

    spec: SweepSpec


class CancelBacktest(_Cmd, tag="cancel_backtest"):
    id: Annotated[str, Meta(min_length=1, max_length=64)]


class GetBacktest(_Cmd, tag="get_backtest"):
    """A run or sweep with its metrics, equity curve, orders and trades; ``chart`` adds each symbol's price
    bars (thinned for a chart); ``export`` returns one part as CSV or JSON text instead."""

    id: Annotated[str, Meta(min_length=1, max_length=64)]
    chart: bool = False
    export: Literal["", "metrics", "per_symbol", "curve", "daily", "orders", "trades", "fills", "refusals"] = ""
    format: Literal["csv", "json"] = "csv"


class ListBacktests(_Cmd, tag="list_backtests"):
    limit: Annotated[int, Meta(ge=1, le=500)] = 50


class Reads(_Cmd, tag="reads"):
    """Several reads of one user for one service in one request: each an encoded ``Get*`` / ``List*``
    command, answered by ``Ok(data=[each reply encoded, in order])``. What a page asks of a worker at once
    (a dashboard load's positions, orders and trades) travels as one message each way (``Bus.read``)."""

    commands: Annotated[list[bytes], Meta(min_length=1, max_length=READS_MAX)]


def is_read(cmd: Struct) -> bool:
    """A quick read of state (``Get*`` / ``List*``): changes nothing, so it may share a request with others."""
    return type(cmd).__name__.startswith(("Get", "List"))


Command = Union[
    Reads,
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
    GetRiskLimits,
    HaltTrading,
    SquareOffAll,
    PlaceOrder,
    ModifyOrder,
    CancelOrder,
    GetExecutionSummary,
    GetJournal,
    GetJournalSummary,
    GetAudit,
    GetOrders,
    GetTrades,
    GetPositions,
    GetStrategyPositions,
    GetCarried,
    Reconcile,
    GetStatus,
    Scan,
    RunBacktest,
    RunSweep,
    CancelBacktest,
    GetBacktest,
    ListBacktests,
]


READ_VERBS = frozenset(c.__struct_config__.tag for c in Command.__args__  # type: ignore[attr-defined]
                       if c is Reads or c.__name__.startswith(("Get", "List")))  # what ``is_read`` names, by subject


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
