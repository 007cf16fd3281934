"""Pre-trade risk of one user: every signal is checked against the kill switch and the limits, and a
refusal comes back as data — a RiskDecision with a reason code and a sentence naming the numbers.

Risk judges from the books, never from the label: an exit is an order on the opposite side of the
strategy's own position and at most its size (larger exits are clamped, an exit of nothing is
refused NO_POSITION); REDUCING and HALTED let only true reductions through; a MARKET order is
valued at the last price and a group is checked as a whole."""

from __future__ import annotations

import enum
import time
from collections import deque
from collections.abc import Callable

from msgspec import Struct

from shared.messages import (
    KillSwitchState,
    OrderType,
    RiskLimits,
    RiskState,
    Signal,
    SignalGroup,
    TransactionType,
    format_inr,
)
from shared.trading.kill_switch import HaltListener, KillSwitch, RiskStore
from shared.trading.positions import signed
from shared.trading.risk_context import RiskContext, context_from  # noqa: F401 - risk's public names
from shared.trading.summary import RiskSummary, risk_summary


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
    NO_POSITION = "NO_POSITION"
    INVALID_STOP = "INVALID_STOP"
    INVALID_TARGET = "INVALID_TARGET"
    INVALID_TRIGGER = "INVALID_TRIGGER"
    PRICE_UNKNOWN = "PRICE_UNKNOWN"
    GREEKS_UNPRICED = "GREEKS_UNPRICED"
    PRODUCT_MISMATCH = "PRODUCT_MISMATCH"
    DELIVERY_SHORT = "DELIVERY_SHORT"
    PRICE_OUTSIDE_BAND = "PRICE_OUTSIDE_BAND"


class RiskDecision(Struct, frozen=True):
    """``quantities``: what may be placed per instrument of the signal (its legs, in order); an exit
    is clamped to the position and a leg with nothing to close is 0. Empty: as asked."""

    ok: bool
    code: str = ""
    reason: str = ""
    quantities: tuple[int, ...] = ()


ACCEPTED = RiskDecision(True)


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
                            unrealised=ks.unrealised, loss=ks.loss, exposure=ks.exposure, max_daily_loss=self.limits.max_daily_loss,
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

    @property
    def halted(self) -> bool:
        """True while HALTED: the worker keeps the user's strategies deactivated."""
        return self.kill_switch.halted

    def _check(self, sig: Signal | SignalGroup, ctx: RiskContext) -> RiskDecision:
        ks, limits = self.kill_switch, self.limits
        if mixed := _mixed_products(sig, ctx):
            return mixed
        if outside := _outside_band(sig, ctx):  # the exchange would reject it, an exit's too
            return outside
        if sig.intent == "exit":
            return _exit(sig, ctx)  # a true reduction in every state
        if short := _delivery_short(sig, ctx):
            return short
        reduces = _reduces(sig, ctx)
        if ks.state is KillSwitchState.HALTED and not reduces:
            return RiskDecision(False, RiskCode.KILL_SWITCH_HALTED, f"kill switch HALTED: {ks.reason}")
        if ks.loss >= limits.max_daily_loss and not reduces:
            ks.on_pnl(ks.realised, ks.unrealised, "pre-trade check")
            return RiskDecision(False, RiskCode.DAILY_LOSS_LIMIT,
                                f"day loss {format_inr(ks.loss)} is at the daily loss limit "
                                f"{format_inr(limits.max_daily_loss)}")
        if ks.state is KillSwitchState.REDUCING and not reduces:
            return RiskDecision(False, RiskCode.REDUCING_ONLY_EXITS, f"kill switch REDUCING, only exits: {ks.reason}")
        if bad_trigger := _trigger(sig, ctx):
            return bad_trigger
        if reduces:
            return ACCEPTED
        orders = _order_count(sig)
        self._forget_before(self.clock() - 60)
        if len(self._accepted_at) + orders > limits.max_orders_per_minute:
            return RiskDecision(False, RiskCode.ORDER_RATE,
                                f"{len(self._accepted_at)} orders in the last minute, limit {limits.max_orders_per_minute}")
        if ctx.open_orders + orders > limits.max_open_orders:
            return RiskDecision(False, RiskCode.MAX_OPEN_ORDERS,
                                f"{ctx.open_orders} open orders + {orders}, limit {limits.max_open_orders}")
        return (_stops(sig, ctx) or self._size(sig, ctx) or self._exposure(sig, ctx) or self._greeks(sig, ctx)
                or ACCEPTED)

    def _size(self, sig: Signal | SignalGroup, ctx: RiskContext) -> RiskDecision | None:
        """The position each instrument would reach — the strategy's, and the most the broker can come
        to hold (the larger side of what the strategies hold together: the others on the opposite side
        may exit at any time), with what working orders may still fill — within the quantity (or lot) limit."""
        limits = self.limits
        for (exchange, symbol, side, qty) in _lines(sig):
            h = ctx.holding(exchange, symbol)
            change = signed(side, qty)
            size = max(abs(h.held + h.pending + change), *h.sides_after(change), qty)
            lot = h.lot_size
            if lot > 1 and size // lot > limits.max_position_lots:
                return RiskDecision(False, RiskCode.POSITION_SIZE,
                                    f"{symbol}: {size // lot} lots, limit {limits.max_position_lots} lots")
            if lot <= 1 and size > limits.max_position_qty:
                return RiskDecision(False, RiskCode.POSITION_SIZE, f"{symbol}: quantity {size}, limit "
                                                                   f"{limits.max_position_qty}")
        return None

    def _exposure(self, sig: Signal | SignalGroup, ctx: RiskContext) -> RiskDecision | None:
        """What the order adds to the most the broker can come to hold — per instrument and product the
        larger side of the strategies' positions (Kite nets them; exits can undo the netting), so an order
        against another strategy's position adds nothing up to that position's size — and to the
        strategy's own exposure (its own limit)."""
        limits = self.limits
        account = own = 0
        for (exchange, symbol, side, qty), price in zip(_lines(sig), _prices(sig)):
            h = ctx.holding(exchange, symbol)
            price = price or h.last_price
            if not price:
                return RiskDecision(False, RiskCode.PRICE_UNKNOWN,
                                    f"{symbol}: no last price for a market order, so its exposure cannot be checked")
            change = signed(side, qty)
            grown = max(h.account_long + max(h.held + change, 0) - max(h.held, 0),
                        h.account_short + max(-h.held - change, 0) - max(-h.held, 0))
            account += (grown - max(h.account_long, h.account_short)) * price
            own += (abs(h.held + change) - abs(h.held)) * price
        symbol = sig.underlying if isinstance(sig, SignalGroup) else sig.tradingsymbol
        checks = (
            (RiskCode.EXPOSURE_LIMIT, "total", ctx.exposure, account, limits.max_exposure),
            (RiskCode.SYMBOL_EXPOSURE, symbol, ctx.exposure_by_symbol.get(symbol, 0), account,
             limits.max_exposure_per_symbol),
            (RiskCode.STRATEGY_EXPOSURE, sig.strategy_id, ctx.exposure_by_strategy.get(sig.strategy_id, 0), own,
             limits.max_exposure_per_strategy),
        )
        for code, what, current, added, limit in checks:
            if added > 0 and current + added > limit:
                return RiskDecision(False, code, f"{what} exposure {format_inr(current)} + {format_inr(added)} "
                                                 f"exceeds {format_inr(limit)}")
        return None

    def _greeks(self, sig: Signal | SignalGroup, ctx: RiskContext) -> RiskDecision | None:
        underlying = sig.underlying if isinstance(sig, SignalGroup) else ctx.underlying
        if not ctx.greeks_priced:
            return RiskDecision(False, RiskCode.GREEKS_UNPRICED,
                                f"{underlying or sig.strategy_id}: option greeks could not be priced, so the net "
                                f"delta and vega limits cannot be checked")
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


def _lines(sig: Signal | SignalGroup) -> list[tuple[str, str, TransactionType, int]]:
    """(exchange, symbol, side, quantity) of each instrument the signal trades."""
    if isinstance(sig, SignalGroup):
        return [(str(leg.exchange), leg.tradingsymbol, leg.transaction_type, leg.quantity) for leg in sig.legs]
    return [(str(sig.exchange), sig.tradingsymbol, sig.transaction_type, sig.quantity)]


def _prices(sig: Signal | SignalGroup) -> list[int]:
    """The price each line is valued at when it has one (a LIMIT order's); 0: the last price."""
    if isinstance(sig, SignalGroup):
        return [leg.price if leg.order_type is not OrderType.MARKET else 0 for leg in sig.legs]
    if sig.order_type is OrderType.SL_M:
        return [sig.trigger_price or 0]
    return [sig.price if sig.order_type is not OrderType.MARKET else 0]


def limit_prices(sig: Signal | SignalGroup) -> list[int]:
    """Each line's own limit price (a LIMIT's, an SL's); 0 where it has none (MARKET, SL-M)."""
    legs = sig.legs if isinstance(sig, SignalGroup) else [sig]
    return [leg.price or 0 if leg.order_type in (OrderType.LIMIT, OrderType.SL) else 0 for leg in legs]


def _outside_band(sig: Signal | SignalGroup, ctx: RiskContext) -> RiskDecision | None:
    """A limit price outside the instrument's circuit band for the day, judged only where the band is known
    (from the broker's quote): an unknown band is left to the broker, never guessed."""
    for (exchange, symbol, side, _), price in zip(_lines(sig), limit_prices(sig)):
        h = ctx.holding(exchange, symbol)
        if problem := outside_band(symbol, side, price, h.lower, h.upper):
            return RiskDecision(False, RiskCode.PRICE_OUTSIDE_BAND, problem)
    return None


def outside_band(symbol: str, side: str, price: int, lower: int, upper: int) -> str:
    """Why ``price`` (paise) cannot be a limit today, or "" (inside the band, no price, or the band unknown)."""
    if price and lower and upper and not lower <= price <= upper:
        return (f"{symbol}: {side} limit price {format_inr(price)} is outside today's circuit band "
                f"{format_inr(lower)}–{format_inr(upper)} (the exchange would reject it)")
    return ""


def _reduces(sig: Signal | SignalGroup, ctx: RiskContext) -> bool:
    """Every line closes part of what the strategy holds, no more than what is still open to close."""
    for exchange, symbol, side, qty in _lines(sig):
        h = ctx.holding(exchange, symbol)
        if h.held * signed(side, qty) >= 0 or qty > h.exitable:
            return False
    return True


def _mixed_products(sig: Signal | SignalGroup, ctx: RiskContext) -> RiskDecision | None:
    """A strategy's position in an instrument is held in one product. Kite keeps MIS and NRML (or CNC)
    positions apart, so an order in another product never changes it: an "exit" would open a second
    position beside it, an entry one kta's books would count as the same. Refused, entries and exits:
    close it first, or trade it in the product it is held in."""
    for exchange, symbol, _, _ in _lines(sig):
        h = ctx.holding(exchange, symbol)
        if h.held and h.held_product and h.product and h.held_product != h.product:
            return RiskDecision(False, RiskCode.PRODUCT_MISMATCH,
                                f"{sig.strategy_id} holds {h.held} {symbol} as {h.held_product}: a {h.product} order "
                                f"would be a second position beside it, not a change of this one")
    return None


def _delivery_short(sig: Signal | SignalGroup, ctx: RiskContext) -> RiskDecision | None:
    """India has no delivery short: a CNC sell only sells shares held, and Kite refuses a CNC sell beyond
    them (so does a GTT OCO's stop for a short). A CNC entry that would leave the strategy short is
    refused here, before any order: trade shorts intraday (MIS) or in F&O (NRML). A strategy holds only
    what it bought; the trader's own order from the desk may sell demat holdings (Kite checks those)."""
    if (getattr(sig, "metadata", None) or {}).get("source") == "manual":
        return None
    for exchange, symbol, side, qty in _lines(sig):
        h = ctx.holding(exchange, symbol)
        if h.product == "CNC" and side is TransactionType.SELL and h.held - qty < 0:
            return RiskDecision(False, RiskCode.DELIVERY_SHORT,
                                f"a CNC (delivery) SELL of {qty} {symbol} would leave {sig.strategy_id} short "
                                f"{qty - max(h.held, 0)}: delivery sells only shares held; short intraday (MIS)")
    return None


def _exit(sig: Signal | SignalGroup, ctx: RiskContext) -> RiskDecision:
    """An exit closes what the strategy holds: each line clamped to the open position, a line with
    nothing to close dropped (0); nothing to close at all is NO_POSITION."""
    quantities, notes = [], []
    for exchange, symbol, side, qty in _lines(sig):
        h = ctx.holding(exchange, symbol)
        if h.held * signed(side, 1) >= 0:  # flat, or this side would add to the position
            quantities.append(0)
            notes.append(f"{sig.strategy_id} holds {h.held} {symbol}: nothing for a {side} exit to close")
            continue
        can = min(qty, h.exitable)
        quantities.append(can)
        if can == 0:
            notes.append(f"{symbol}: working exit orders already close the {abs(h.held)} held")
        elif can < qty:
            notes.append(f"{symbol}: exit of {qty} clamped to the {can} held")
    if not any(quantities):
        return RiskDecision(False, RiskCode.NO_POSITION, "; ".join(notes))
    return RiskDecision(True, reason="; ".join(notes), quantities=tuple(quantities))


def _trigger(sig: Signal | SignalGroup, ctx: RiskContext) -> RiskDecision | None:
    """An SL / SL-M entry's own trigger as Kite's RMS judges it: a buy stop above the last price, a sell
    stop below it, inside the circuit band, and an SL's limit at or beyond its trigger."""
    if isinstance(sig, SignalGroup) or sig.order_type not in (OrderType.SL, OrderType.SL_M):
        return None
    trigger, buy = sig.trigger_price or 0, sig.transaction_type is TransactionType.BUY
    h = ctx.holding(str(sig.exchange), sig.tradingsymbol)
    problem = ""
    if trigger <= 0:
        problem = f"an {sig.order_type} order needs its trigger price"
    elif not h.last_price:
        return RiskDecision(False, RiskCode.PRICE_UNKNOWN, f"{sig.tradingsymbol}: no last price to judge the "
                                                            f"trigger {format_inr(trigger)} against")
    elif buy and trigger <= h.last_price:
        problem = (f"trigger {format_inr(trigger)} must be above the last price {format_inr(h.last_price)} "
                   f"(a stop-loss BUY triggers when the price rises to it)")
    elif not buy and trigger >= h.last_price:
        problem = (f"trigger {format_inr(trigger)} must be below the last price {format_inr(h.last_price)} "
                   f"(a stop-loss SELL triggers when the price falls to it)")
    elif (h.upper and trigger > h.upper) if buy else (h.lower and trigger < h.lower):
        problem = f"trigger {format_inr(trigger)} is outside the circuit band {format_inr(h.lower)}–{format_inr(h.upper)}"
    elif sig.order_type is OrderType.SL and (sig.price < trigger if buy else sig.price > trigger):
        problem = (f"an SL {sig.transaction_type}'s price {format_inr(sig.price)} must be at or "
                   f"{'above' if buy else 'below'} its trigger {format_inr(trigger)}")
    return RiskDecision(False, RiskCode.INVALID_TRIGGER, f"{sig.tradingsymbol}: {problem}") if problem else None


def _stops(sig: Signal | SignalGroup, ctx: RiskContext) -> RiskDecision | None:
    """An entry's stop and target above zero, on their sides of the price, inside the circuit band."""
    if isinstance(sig, SignalGroup) or not (sig.stop_loss or sig.target):
        return None
    h = ctx.holding(str(sig.exchange), sig.tradingsymbol)
    ref = _prices(sig)[0] or h.last_price  # where the entry fills: its limit, an SL-M's trigger, else the market
    long = sig.transaction_type is TransactionType.BUY
    for code, name, value, below in ((RiskCode.INVALID_STOP, "stop-loss", sig.stop_loss, long),
                                     (RiskCode.INVALID_TARGET, "target", sig.target, not long)):
        if value is None:
            continue
        problem = ""
        if value <= 0:
            problem = "must be above zero"
        elif ref and (value >= ref if below else value <= ref):
            problem = f"must be {'below' if below else 'above'} the price {format_inr(ref)} for a {sig.transaction_type}"
        elif h.lower and h.upper and not h.lower <= value <= h.upper:
            problem = f"is outside the circuit band {format_inr(h.lower)}–{format_inr(h.upper)}"
        if problem:
            return RiskDecision(False, code, f"{sig.tradingsymbol}: {name} {format_inr(value)} {problem}")
    return None
