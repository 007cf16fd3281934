"""The simulated execution desk of a backtest: what the execution worker does with a signal, on bars.

Every signal goes through the live ``RiskManager`` (kill switch, size, exposure, order rate on backtest
time, an exit clamped to what the strategy holds) with the live ``RiskContext`` built from the live
``PositionTracker`` and ``OrderBook``; accepted, it becomes the live order plan
(``shared/trading/planning.py``: freeze-quantity slices) and the live protection plan
(``shared/trading/protection.py``: one stop-loss at the broker for what is held, the target watched on the
price and reached by turning the stop into a LIMIT at it, which moves to the stop's limit if the price comes back to
the stop first (``stops.py``), a stop the exchange rejects because the price already passed its trigger re-placed
once with a corrected trigger, then the position closed; a CNC / NRML position's GTTs instead, ``gtts.py``).
Each order is the live ``Order`` model, moved by the same events (submitted, placed, the broker's updates,
fills, cancels). Orders fill by the shared fill model
(``shared/fills.py``) and pay Zerodha's charges (``shared/charges.py``). What became of each signal is told
to the strategy as the execution worker tells it: ``StrategyOutcome``s with the authoritative position.
A multi-leg SignalGroup is placed by ``groups.py`` (the live hedge rules and group placement plan).
Money is integer paise throughout.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from shared import ist
from shared.fills import BarFills, band_pct, circuit_band, trigger_hit
from shared.kite.models import Instrument
from shared.messages import (
    OrderRequest,
    OrderType,
    RiskLimits,
    Signal,
    SignalGroup,
    StrategyOutcome,
    TransactionType,
)
from shared.trading.book import OrderBook
from shared.trading.kill_switch import MemoryRiskStore
from shared.trading.order import (
    BrokerUpdate,
    CancelRequested,
    Fill,
    Order,
    OrderState,
    Placed,
    Submitted,
)
from shared.trading.planning import lot_of, order_request, signal_requests, tick_paise
from shared.trading.positions import PositionTracker
from shared.trading.protection import (
    SL_SLIPPAGE_PCT,
    Cancel,
    Modify,
    Place,
    Protection,
    corrected_stop,
    plan,
)
from shared.trading.protection_gtt import uses_gtt
from shared.trading.risk import RiskManager
from shared.trading.risk_context import context_from
from strategy_worker.backtest import closing
from strategy_worker.backtest.groups import place_group
from strategy_worker.backtest.gtts import Gtts
from strategy_worker.backtest.results import Recorder
from strategy_worker.backtest.same_day import SameDay
from strategy_worker.backtest.stops import wake_levels, walk

# Circuit bands are kite_sim's (``shared.fills.band_pct``), a stop's limit the execution worker's default
# (``SL_SLIPPAGE_PCT``). Options have no band here: NSE's option ranges are set from the theoretical price and
# flexed through the day, nothing like a fixed percentage of yesterday's close (a cheap option halves or triples in
# a session), and a contract's candle at a price is proof that price was inside its range then.
UNBANDED = frozenset({"CE", "PE"})


@dataclass(slots=True)
class Resting:
    """A position's stop-loss working at the (simulated) exchange: its live ``Order`` and its protection."""

    order: Order
    inst: Instrument
    protection: Protection


class Desk:
    def __init__(self, user_id: str, instruments: dict[int, Instrument], recorder: Recorder, price: dict[int, float],
                 limits: RiskLimits | None = None, slippage_ticks: int = 1) -> None:
        self.user_id = user_id
        self.instruments = instruments
        self.rec = recorder
        self.fills = BarFills(slippage_ticks)
        self.now = 0  # backtest time, epoch s
        self.risk = RiskManager(user_id, limits or RiskLimits(), MemoryRiskStore(), clock=lambda: self.now)
        self.tracker = PositionTracker()
        self.book = OrderBook()  # the live order model, every order of the run while it works
        self.protections: dict[tuple[str, int], Protection] = {}  # (strategy, token) -> what protects it
        self.ids = 0
        self.resting: dict[int, dict[str, Resting]] = {}  # token -> tag -> order (no key when none)
        self.wake: dict[int, tuple[float, float]] = {}  # token -> (a bar low at or below, a high at or above)
        self.price = price  # token -> last price in rupees, shared with the strategies' context
        self.open_tokens: set[int] = set()  # tokens with a position open (marked to market each bar)
        self.prev_close: dict[int, int] = {}  # token -> previous day's close (circuit bands)
        self.strategy_qty: dict[tuple[str, int], int] = {}
        self.same_day = SameDay()  # a CNC round trip of one day is charged as intraday
        self.seq = 0
        self.day = ""
        self.by_key: Mapping[str, Instrument] = {}  # "EXCHANGE:SYMBOL" -> the day's instruments (group risk)
        self.traded: set[int] = set()  # tokens with a bar this minute (a group's legs fill only on those)
        self.gtts = Gtts(self)  # CNC / NRML positions' GTTs: they outlive the day (gtts.py)
        self.underlyings: dict[str, int] = {}  # underlying name -> the token of its price (expiry settlement)

    # ---- time ---------------------------------------------------------------------------------

    def new_day(self, day: str) -> None:
        if self.day:
            self.risk.new_day(day)
        self.day = day

    def band(self, inst: Instrument) -> tuple[int, int] | None:
        prev = self.prev_close.get(inst.instrument_token)
        if not prev or inst.instrument_type in UNBANDED:
            return None
        return circuit_band(prev, band_pct(inst.instrument_type), tick_paise(inst))

    # ---- signals ------------------------------------------------------------------------------

    def submit(self, sig: Signal | SignalGroup) -> list[StrategyOutcome]:
        """Risk, then the order plan, filled at the current price (the bar's open: the first tick after
        the bar that produced the signal, where the live worker's order reaches the broker)."""
        if isinstance(sig, SignalGroup):
            return place_group(self, sig)
        inst = self.instruments.get(sig.instrument_token)
        price = self.paise(sig.instrument_token)
        key = f"{sig.exchange.value}:{sig.tradingsymbol}"
        band = self.band(inst) if inst else None
        ctx = context_from(self.tracker, self.book, sig, prices={key: price} if price else {},
                           lot_sizes={key: lot_of(inst)}, circuits={key: band} if band else {})
        verdict = self.risk.validate_signal(sig, ctx)
        if not verdict.ok:
            self.rec.refusal(self.now, sig, verdict.code, verdict.reason)
            return [self.outcome(sig.strategy_id, "refused", signal_id=sig.id, token=sig.instrument_token,
                                 code=verdict.code, reason=verdict.reason)]
        if inst is not None and inst.expiry is not None and inst.expiry.isoformat() < self.day:
            return self._reject(sig, "INSTRUMENT_EXPIRED", f"{inst.tradingsymbol} expired on {inst.expiry}")
        if inst is None or not price:
            return self._reject(sig, "NO_PRICE", "no price for the traded instrument")
        out = [self.outcome(sig.strategy_id, "accepted", signal_id=sig.id, token=sig.instrument_token)]
        if sig.intent == "exit":
            self.cancel_protective(sig.strategy_id, sig.instrument_token, "the strategy exits")
        quantity = verdict.quantities[0] if verdict.quantities else sig.quantity
        filled = 0
        for req in signal_requests(sig, inst, -1, quantity=quantity):
            order = self.order(req, sig.strategy_id, OrderState.OPEN)
            fill = self.fills.market(req.transaction_type.value, price, tick_paise(inst), band=band)
            self.complete(order, fill)
            self.rec.order(self.now, req, "COMPLETE", fill, sig.strategy_id)
            out.append(self.fill(sig.strategy_id, sig.id, req.kind, inst, req.transaction_type.value, req.quantity,
                                 fill, req.product.value, "filled"))
            filled += req.quantity
        key = (sig.strategy_id, inst.instrument_token)
        if sig.intent == "entry" and (sig.stop_loss or sig.target):
            self.protections[key] = Protection(
                user_id=self.user_id, strategy_id=sig.strategy_id, exchange=inst.exchange,
                tradingsymbol=inst.tradingsymbol, instrument_token=inst.instrument_token, product=sig.product.value,
                stop=sig.stop_loss or 0, target=sig.target or 0, signal_id=sig.id)
        if key in self.protections:
            out += self.sync(self.protections[key], inst)
        return out

    def _reject(self, sig: Signal, code: str, reason: str) -> list[StrategyOutcome]:
        """What the broker refuses (an instrument it does not list, or without a price)."""
        self.rec.refusal(self.now, sig, code, reason)
        return [self.outcome(sig.strategy_id, "rejected", signal_id=sig.id, token=sig.instrument_token,
                             code=code, reason=reason)]

    # ---- the live order model -----------------------------------------------------------------

    def order(self, req: OrderRequest, strategy_id: str, state: OrderState) -> Order:
        """An order submitted, placed and accepted by the exchange (``state``: OPEN or TRIGGER PENDING)."""
        order = self.book.add(Order.from_request(req, strategy_id=strategy_id, created=ist.stamp(self.now)))
        self.ids += 1
        ts = self.now * 1_000_000_000
        order.apply(Submitted(ts=ts))
        order.apply(Placed(order_id=f"BT{self.ids:012d}", ts=ts))
        self.book.indexed(order)
        order.apply(BrokerUpdate(order_id=order.order_id, state=state, status=state.value, ts=ts,
                                 order_timestamp=ist.stamp(self.now)))
        return order

    def complete(self, order: Order, price: int) -> None:
        ts, stamp = self.now * 1_000_000_000, ist.stamp(self.now)
        order.apply(Fill(trade_id=f"{order.order_id}-1", quantity=order.quantity, price=price, timestamp=stamp, ts=ts))
        order.apply(BrokerUpdate(order_id=order.order_id, state=OrderState.COMPLETE, status="COMPLETE", ts=ts,
                                 filled_quantity=order.quantity, average_price=price, exchange_timestamp=stamp))

    def cancel(self, order: Order, reason: str) -> None:
        ts = self.now * 1_000_000_000
        order.apply(CancelRequested(reason=reason, ts=ts))
        order.apply(BrokerUpdate(order_id=order.order_id, state=OrderState.CANCELLED, status="CANCELLED", ts=ts,
                                 exchange_timestamp=ist.stamp(self.now)))
        self.rec.order_status(order.tag, "CANCELLED")

    # ---- protection (shared/trading/protection.py, carried out on the simulated exchange) --------

    def sync(self, p: Protection, inst: Instrument) -> list[StrategyOutcome]:
        """Make the working stop (a CNC / NRML position's GTTs) agree with what is held, as the execution
        worker's protector does."""
        token = inst.instrument_token
        held = self.strategy_qty.get((p.strategy_id, token), 0)
        book = self.resting.get(token, {})
        mine = [r.order for r in book.values() if r.protection is p]
        out: list[StrategyOutcome] = []
        if uses_gtt(p.product):  # the orders its GTTs fired still close what they cover
            for o in mine if not held else ():
                book.pop(o.tag, None)
                self.cancel(o, "nothing left to protect")
            self.gtts.sync(p, inst, held, sum(o.remaining for o in mine) if held else 0)
        else:
            for action in plan(p, held, 0, mine, inst, SL_SLIPPAGE_PCT):
                if isinstance(action, Place):
                    out += self._place_stop(p, action.request, inst)
                elif isinstance(action, Cancel):
                    book.pop(action.order.tag, None)
                    self.cancel(action.order, action.reason)
                elif isinstance(action, Modify):
                    self.modify(action)
        if not held:
            self.protections.pop((p.strategy_id, token), None)
        self.rewake(token)
        return out

    def _place_stop(self, p: Protection, req: OrderRequest, inst: Instrument) -> list[StrategyOutcome]:
        price = self.paise(inst.instrument_token)
        if price and trigger_hit(req.transaction_type.value, req.trigger_price, price):
            # the exchange refuses a stop whose trigger the price has already passed
            self.order(req, p.strategy_id, OrderState.REJECTED)
            self.rec.order(self.now, req, "REJECTED", 0, p.strategy_id)
            return self._rejected(p, inst, price)
        self.rest(self.order(req, p.strategy_id, OrderState.TRIGGER_PENDING), inst, p)
        self.rec.order(self.now, req, "TRIGGER PENDING", 0, p.strategy_id)
        return []

    def rest(self, order: Order, inst: Instrument, p: Protection) -> None:
        """``order`` works at the exchange for ``p`` until it fills or is cancelled."""
        self.resting.setdefault(inst.instrument_token, {})[order.tag] = Resting(order, inst, p)

    def _rejected(self, p: Protection, inst: Instrument, price: int) -> list[StrategyOutcome]:
        """Once more with a corrected trigger; rejected again, the position is closed at the market."""
        held = self.strategy_qty.get((p.strategy_id, inst.instrument_token), 0)
        if not p.retried:
            p.retried = True
            lower, upper = self.band(inst) or (0, 0)
            p.stop = corrected_stop(p, held, price, lower, upper, inst, SL_SLIPPAGE_PCT)
            return self.sync(p, inst)
        p.mode = "failed"
        side = TransactionType.SELL if held > 0 else TransactionType.BUY
        req = order_request(self.user_id, kind="flatten", origin=f"unprotected|{p.key}", exchange=inst.exchange,
                            tradingsymbol=inst.tradingsymbol, instrument_token=inst.instrument_token, side=side,
                            quantity=abs(held), product=p.product, order_type=OrderType.MARKET, inst=inst)
        fill = self.fills.market(side.value, price, tick_paise(inst), band=self.band(inst))
        self.complete(self.order(req, p.strategy_id, OrderState.OPEN), fill)
        self.rec.order(self.now, req, "COMPLETE", fill, p.strategy_id)
        self.protections.pop((p.strategy_id, inst.instrument_token), None)
        return [self.fill(p.strategy_id, "", "flatten", inst, side.value, abs(held), fill, p.product, "filled",
                          reason="stop-loss rejected twice: position closed")]

    def modify(self, m: Modify) -> None:
        o = m.order
        o.apply(BrokerUpdate(order_id=o.order_id, state=o.state, status=o.status, ts=self.now * 1_000_000_000,
                             quantity=m.quantity, trigger_price=m.trigger_price, price=m.price,
                             order_type=m.order_type))
        self.rec.modified(o.tag, o.order_type, o.price, o.quantity)

    def rewake(self, token: int) -> None:
        """The bar range that can touch any resting order of ``token``: a bar entirely inside it is
        skipped with two comparisons (the fill model is asked only when a level is within reach)."""
        book = self.resting.get(token)
        if not book:
            self.resting.pop(token, None)
        if not book and token not in self.gtts.by_token:
            self.wake.pop(token, None)
            return
        levels = [wake_levels(r.order, r.protection, self.fills.slippage_ticks * tick_paise(r.inst))
                  for r in (book or {}).values()]
        low, high = -1.0, float("inf")
        for lo, hi in [*levels, self.gtts.wake(token)]:
            low, high = max(low, lo / 100) if lo else low, min(high, hi / 100) if hi >= 0 else high
        self.wake[token] = (low, high)

    def cancel_protective(self, strategy_id: str, token: int, reason: str) -> None:
        book = self.resting.get(token)
        for tag in [t for t, r in (book or {}).items() if r.order.strategy_id == strategy_id]:
            self.cancel(book.pop(tag).order, reason)
        self.gtts.delete_for(strategy_id, token, reason)
        self.rewake(token)

    # ---- bars ---------------------------------------------------------------------------------

    def on_path(self, token: int, path: tuple[int, ...]) -> list[StrategyOutcome]:
        """Working stops of ``token`` along the bar's path, as the live protector works them (``stops.walk``),
        then its GTTs (``gtts.py``)."""
        book = self.resting.get(token) or {}
        out: list[StrategyOutcome] = []
        for tag in list(book):
            r = book.get(tag)
            if r is None:
                continue
            o, p = r.order, r.protection
            hit = walk(self.fills, o, p, path, r.inst, self.band(r.inst), SL_SLIPPAGE_PCT, self.modify)
            if hit is None:
                continue
            del book[tag]
            self.complete(o, hit[1])
            self.rec.order_status(tag, "COMPLETE", hit[1], self.now)
            out.append(self.fill(o.strategy_id, o.signal_id, o.kind, r.inst, o.transaction_type.value, o.quantity,
                                 hit[1], o.product, "protective_fill"))
            out += self.sync(p, r.inst)
        out += self.gtts.on_path(token, path)
        self.rewake(token)
        return out

    def paise(self, token: int) -> int:
        return int(self.price.get(token, 0.0) * 100 + 0.5)

    def mark(self, token: int, price: int) -> None:
        """A bar's close on an open position: marked to market, the kill switch fed (as live, on ticks)."""
        self.tracker.mark(token, price)
        t = self.tracker
        self.risk.on_pnl(t.realised, t.unrealised, "tick", t.exposure)

    def end_of_day(self) -> list[StrategyOutcome]:
        """The broker's and the exchange's end of the day (``closing.py``)."""
        return closing.end_of_day(self)

    def product(self, strategy_id: str, token: int) -> str:
        return self.rec.products.get((strategy_id, token), "MIS")

    # ---- fills and outcomes -------------------------------------------------------------------

    def fill(self, strategy_id: str, signal_id: str, kind: str, inst: Instrument, side: str, qty: int, price: int,
             product: str, outcome: str, reason: str = "", group_id: str = "", cost: int | None = None
             ) -> StrategyOutcome:
        """A fill booked: positions, charges (``cost`` when not an order's: an expiry), the record, risk."""
        token = inst.instrument_token
        closed = self.tracker.on_fill(strategy_id=strategy_id, exchange=inst.exchange,
                                      tradingsymbol=inst.tradingsymbol, transaction_type=side, quantity=qty,
                                      price=price, instrument_token=token, product=product, timestamp=ist.stamp(self.now))
        self.tracker.mark(token, self.paise(token) or price)
        if cost is None:
            cost = self.same_day.cost(inst, product, side, qty, price, ist.now(self.now).date())
        key = (strategy_id, token)
        held = self.strategy_qty.get(key, 0) + (qty if side == "BUY" else -qty)
        self.strategy_qty[key] = held
        if any(q for (_, t), q in self.strategy_qty.items() if t == token):
            self.open_tokens.add(token)
        else:
            self.open_tokens.discard(token)
        self.rec.products[key] = product
        self.rec.fill(self.now, strategy_id, signal_id or group_id, kind, inst, side, qty, price, cost, closed)
        self.risk.on_pnl(self.tracker.realised, self.tracker.unrealised, "fill", self.tracker.exposure)
        return self.outcome(strategy_id, outcome, signal_id=signal_id, token=token, order_kind=kind,
                            transaction_type=TransactionType(side), quantity=qty, price=price, position=held,
                            reason=reason, group_id=group_id)

    def outcome(self, strategy_id: str, kind: str, *, signal_id: str = "", token: int = 0, **kw) -> StrategyOutcome:
        self.seq += 1
        inst = self.instruments.get(token)
        if inst is not None and kind != "accepted" and kind != "refused":  # as the execution worker tells it
            qty, average = self.tracker.held(strategy_id, inst.exchange, inst.tradingsymbol)
            kw.setdefault("position", qty)
            kw.setdefault("average_price", average)
        return StrategyOutcome(user_id=self.user_id, strategy_id=strategy_id, kind=kind, seq=self.seq,
                               signal_id=signal_id, instrument_token=token,
                               exchange=inst.exchange if inst else "", tradingsymbol=inst.tradingsymbol if inst else "",
                               ts=self.now * 1_000_000_000, **kw)

