"""Pre-trade risk of one user: every signal is checked against the kill switch and the limits, and a
refusal comes back as data — a RiskDecision with a reason code and a sentence naming the numbers."""

from __future__ import annotations

import enum
import time
from collections import deque
from collections.abc import Callable

from msgspec import Struct, field

from shared.trading.kill_switch import HaltListener, KillSwitch, RiskStore
from shared.trading.positions import PositionTracker, signed
from shared.trading.summary import RiskSummary, risk_summary
from shared.messages import (
    KillSwitchState,
    RiskLimits,
    RiskState,
    Signal,
    SignalGroup,
    format_inr,
)


class RiskCode(enum.StrEnum):
    KILL_SWITCH_HALTED = "KILL_SWITCH_HALTED"
    REDUCING_ONLY_EXITS = "REDUCING_ONLY_EXITS"
    DAILY_LOSS_LIMIT = "DAILY_LOSS_LIMIT"
    POSITION_SIZE = "POSITION_SIZE"
    EXPOSURE_LIMIT = "EXPOSURE_LIMIT"
    SYMBOL_EXPOSURE = "SYMBOL_EXPOSURE"
    STRATEGY_EXPOSURE = "STRATEGY_EXPOSURE"
    ORDER_RATE = "ORDER_RATE"
    MAX_OPEN_ORDERS = "MAX_OPEN_ORDERS"
    NET_DELTA_LIMIT = "NET_DELTA_LIMIT"
    NET_VEGA_LIMIT = "NET_VEGA_LIMIT"


class RiskDecision(Struct, frozen=True):
    ok: bool
    code: str = ""
    reason: str = ""


ACCEPTED = RiskDecision(True)


class RiskLimitError(Exception):
    """A signal refused by a risk check: journaled, shown, and the next signal goes on."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


class KillSwitchError(RiskLimitError):
    """A signal refused because the kill switch is HALTED: the user's strategies must stop."""


def refusal_error(decision: RiskDecision) -> RiskLimitError:
    cls = KillSwitchError if decision.code == RiskCode.KILL_SWITCH_HALTED else RiskLimitError
    return cls(decision.code, decision.reason)


class RiskContext(Struct, kw_only=True):
    """What the worker knows when a signal arrives. Money in paise, greeks per underlying."""

    exposure: int = 0  # current total exposure
    exposure_by_symbol: dict[str, int] = field(default_factory=dict)  # keyed by tradingsymbol / underlying
    exposure_by_strategy: dict[str, int] = field(default_factory=dict)
    open_orders: int = 0
    notional: int = 0  # the signal's notional; 0 = price × quantity of the signal
    position_qty: int = 0  # current net quantity of the signal's instrument (single-leg signals)
    lot_size: int = 1  # of the signal's instrument (single-leg signals)
    net_delta: dict[str, float] = field(default_factory=dict)
    net_vega: dict[str, float] = field(default_factory=dict)
    underlying: str = ""  # of the signal; a SignalGroup's own underlying wins
    signal_delta: float = 0.0  # what the signal adds to its underlying's net delta
    signal_vega: float = 0.0


def context_from(tracker: PositionTracker, sig: Signal | SignalGroup, *, open_orders: int, lot_size: int = 1,
                 last_price: int = 0, greeks: dict[str, tuple[float, float]] | None = None,
                 signal_greeks: tuple[float, float] = (0.0, 0.0), underlying: str = "") -> RiskContext:
    """The RiskContext for a signal from kta's own position book. ``last_price`` (paise) values a
    market order; ``greeks`` maps underlying → (net delta, net vega) now, ``signal_greeks`` is what
    the signal adds."""
    greeks = greeks or {}
    if isinstance(sig, SignalGroup):
        position_qty, notional = 0, _notional(sig)
    else:
        position_qty = tracker.net_quantity(sig.exchange, sig.tradingsymbol)
        notional = sig.quantity * (sig.price or last_price)
    return RiskContext(
        exposure=tracker.exposure, exposure_by_symbol=tracker.exposure_by_symbol(),
        exposure_by_strategy=tracker.exposure_by_strategy(), open_orders=open_orders, notional=notional,
        position_qty=position_qty, lot_size=lot_size, underlying=underlying,
        net_delta={u: d for u, (d, _) in greeks.items()}, net_vega={u: v for u, (_, v) in greeks.items()},
        signal_delta=signal_greeks[0], signal_vega=signal_greeks[1],
    )


def is_exit(sig: Signal | SignalGroup, ctx: RiskContext) -> bool:
    """An exit closes or reduces what is held: declared so, or a single order against the position."""
    if sig.intent == "exit":
        return True
    if isinstance(sig, SignalGroup):
        return False
    change = signed(sig.transaction_type, sig.quantity)
    return ctx.position_qty * change < 0 and abs(change) <= abs(ctx.position_qty)


class RiskManager:
    def __init__(self, user_id: str, limits: RiskLimits | None, store: RiskStore,
                 clock: Callable[[], float] = time.time, defaults: RiskLimits | None = None) -> None:
        self.user_id = user_id
        self.store = store
        self.clock = clock
        self.kill_switch = KillSwitch(user_id, limits, store, clock, defaults)
        self._accepted_at: deque[float] = deque()  # one entry per order accepted, for the rate limit

    @property
    def limits(self) -> RiskLimits:
        return self.kill_switch.limits

    @property
    def state(self) -> KillSwitchState:
        return self.kill_switch.state

    def set_limits(self, limits: RiskLimits, by: str = "") -> None:
        self.kill_switch.set_limits(limits, by)

    # ---- the kill switch, exposed for the worker

    def on_halt(self, listener: HaltListener) -> None:
        self.kill_switch.on_halt(listener)

    def on_pnl(self, realised: int, unrealised: int, source: str, exposure: int | None = None) -> RiskState | None:
        return self.kill_switch.on_pnl(realised, unrealised, source, exposure)

    def reset(self, reason: str) -> RiskState:
        return self.kill_switch.reset(reason)

    def snapshot(self) -> RiskState:
        return self.kill_switch.snapshot()

    def summary(self, *, position_count: int, trade_count: int, session_start: str = "") -> RiskSummary:
        """The original design's risk summary from the latest P&L and exposure fed to ``on_pnl``."""
        ks = self.kill_switch
        return risk_summary(user_id=self.user_id, state=ks.state, reason=ks.reason, realised=ks.realised,
                            unrealised=ks.unrealised, exposure=ks.exposure, max_daily_loss=self.limits.max_daily_loss,
                            max_exposure=self.limits.max_exposure, position_count=position_count,
                            trade_count=trade_count, session_start=session_start)

    # ---- pre-trade checks

    def validate_signal(self, sig: Signal | SignalGroup, ctx: RiskContext | None = None) -> RiskDecision:
        """Check a signal; an accepted one counts towards the order rate. Refusals are journaled as
        risk events (the caller journals the signal itself with the decision)."""
        ctx = ctx or RiskContext()
        decision = self._check(sig, ctx)
        if decision.ok:
            now = self.clock()
            self._accepted_at.extend([now] * _order_count(sig))
        else:
            self.store.record_risk_event(self.user_id, code=decision.code, message=decision.reason,
                                         signal_id=sig.id, state=self.state)
        return decision

    def require(self, sig: Signal | SignalGroup, ctx: RiskContext | None = None) -> None:
        """``validate_signal`` that raises KillSwitchError / RiskLimitError on refusal."""
        decision = self.validate_signal(sig, ctx)
        if not decision.ok:
            raise refusal_error(decision)

    @property
    def halted(self) -> bool:
        """True while HALTED: the worker keeps the user's strategies deactivated."""
        return self.kill_switch.halted

    def _check(self, sig: Signal | SignalGroup, ctx: RiskContext) -> RiskDecision:
        ks, limits = self.kill_switch, self.limits
        if ks.state is KillSwitchState.HALTED:
            return RiskDecision(False, RiskCode.KILL_SWITCH_HALTED, f"kill switch HALTED: {ks.reason}")
        if ks.loss >= limits.max_daily_loss:
            ks.on_pnl(ks.realised, ks.unrealised, "pre-trade check")
            return RiskDecision(False, RiskCode.DAILY_LOSS_LIMIT,
                                f"day loss {format_inr(ks.loss)} is at the daily loss limit "
                                f"{format_inr(limits.max_daily_loss)}")
        exiting = is_exit(sig, ctx)
        if ks.state is KillSwitchState.REDUCING and not exiting:
            return RiskDecision(False, RiskCode.REDUCING_ONLY_EXITS, f"kill switch REDUCING, only exits: {ks.reason}")
        orders = _order_count(sig)
        self._forget_before(self.clock() - 60)
        if len(self._accepted_at) + orders > limits.max_orders_per_minute:
            return RiskDecision(False, RiskCode.ORDER_RATE,
                                f"{len(self._accepted_at)} orders in the last minute, limit {limits.max_orders_per_minute}")
        if ctx.open_orders + orders > limits.max_open_orders:
            return RiskDecision(False, RiskCode.MAX_OPEN_ORDERS,
                                f"{ctx.open_orders} open orders + {orders}, limit {limits.max_open_orders}")
        if exiting:
            return ACCEPTED
        return self._size(sig, ctx) or self._exposure(sig, ctx) or self._greeks(sig, ctx) or ACCEPTED

    def _size(self, sig: Signal | SignalGroup, ctx: RiskContext) -> RiskDecision | None:
        limits = self.limits
        if isinstance(sig, SignalGroup):
            sizes = [(leg.tradingsymbol, leg.quantity, leg.lot_size) for leg in sig.legs]
        else:
            resulting = abs(ctx.position_qty + signed(sig.transaction_type, sig.quantity))
            sizes = [(sig.tradingsymbol, max(resulting, sig.quantity), ctx.lot_size)]
        for symbol, qty, lot_size in sizes:
            if lot_size > 1 and qty // lot_size > limits.max_position_lots:
                return RiskDecision(False, RiskCode.POSITION_SIZE,
                                    f"{symbol}: {qty // lot_size} lots, limit {limits.max_position_lots} lots")
            if lot_size <= 1 and qty > limits.max_position_qty:
                return RiskDecision(False, RiskCode.POSITION_SIZE, f"{symbol}: quantity {qty}, limit {limits.max_position_qty}")
        return None

    def _exposure(self, sig: Signal | SignalGroup, ctx: RiskContext) -> RiskDecision | None:
        limits = self.limits
        notional = ctx.notional or _notional(sig)
        symbol = sig.underlying if isinstance(sig, SignalGroup) else sig.tradingsymbol
        checks = (
            (RiskCode.EXPOSURE_LIMIT, "total", ctx.exposure, limits.max_exposure),
            (RiskCode.SYMBOL_EXPOSURE, symbol, ctx.exposure_by_symbol.get(symbol, 0), limits.max_exposure_per_symbol),
            (RiskCode.STRATEGY_EXPOSURE, sig.strategy_id, ctx.exposure_by_strategy.get(sig.strategy_id, 0),
             limits.max_exposure_per_strategy),
        )
        for code, what, current, limit in checks:
            if current + notional > limit:
                return RiskDecision(False, code, f"{what} exposure {format_inr(current)} + {format_inr(notional)} "
                                                 f"exceeds {format_inr(limit)}")
        return None

    def _greeks(self, sig: Signal | SignalGroup, ctx: RiskContext) -> RiskDecision | None:
        underlying = sig.underlying if isinstance(sig, SignalGroup) else ctx.underlying
        checks = (
            (RiskCode.NET_DELTA_LIMIT, "delta", ctx.net_delta.get(underlying, 0.0), ctx.signal_delta, self.limits.max_net_delta),
            (RiskCode.NET_VEGA_LIMIT, "vega", ctx.net_vega.get(underlying, 0.0), ctx.signal_vega, self.limits.max_net_vega),
        )
        for code, greek, current, added, limit in checks:
            after = current + added
            if abs(after) > limit and abs(after) > abs(current):
                return RiskDecision(False, code, f"{underlying} net {greek} {current:g} + {added:g} exceeds ±{limit:g}")
        return None

    def _forget_before(self, cutoff: float) -> None:
        while self._accepted_at and self._accepted_at[0] <= cutoff:
            self._accepted_at.popleft()

    def new_day(self, day: str) -> RiskState | None:
        """Daily counters back to zero (called by the end-of-day routine)."""
        self._accepted_at.clear()
        return self.kill_switch.new_day(day)


def _order_count(sig: Signal | SignalGroup) -> int:
    return len(sig.legs) if isinstance(sig, SignalGroup) else 1


def _notional(sig: Signal | SignalGroup) -> int:
    if isinstance(sig, SignalGroup):
        return sum(leg.price * leg.quantity for leg in sig.legs)
    return sig.price * sig.quantity

