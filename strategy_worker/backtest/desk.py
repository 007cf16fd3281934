"""The simulated execution desk of a backtest: what the execution worker does with a signal, on bars.

Every signal goes through the live ``RiskManager`` (kill switch, size, exposure, order rate on backtest
time) with a ``RiskContext`` from the live ``PositionTracker``; accepted, it becomes the live order plan
(``shared/trading/planning.py``: freeze-quantity slices, then the stop-loss as an SL order and the target as
a LIMIT once the entry has filled, one-cancels-other). Orders fill by the shared fill model
(``shared/fills.py``) and pay Zerodha's charges (``shared/charges.py``). What became of each signal is told
to the strategy as the execution worker tells it: ``StrategyOutcome``s with the authoritative position.
Money is integer paise throughout.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared import ist
from shared.charges import charges_paise
from shared.fills import BarFills, circuit_band
from shared.kite.models import Instrument
from shared.messages import OrderType, RiskLimits, Signal, SignalGroup, StrategyOutcome, TransactionType
from shared.trading.kill_switch import MemoryRiskStore
from shared.trading.planning import protective_requests, signal_requests, tick_paise
from shared.trading.positions import PositionTracker
from shared.trading.risk import RiskManager, context_from
from strategy_worker.backtest.results import Recorder

SL_SLIPPAGE_PCT = 0.5  # the execution worker's default limit beyond an SL trigger (KTA_SL_SLIPPAGE_PCT)
BAND_PCT = {"EQ": 20.0}  # circuit band around the previous close; derivatives: 50 % (kite_sim's bands)


@dataclass(slots=True)
class Resting:
    """A stop-loss or target waiting in the book."""

    tag: str
    signal_id: str
    strategy_id: str
    kind: str  # stop_loss | target
    inst: Instrument
    side: str
    quantity: int
    order_type: OrderType
    price: int
    trigger: int
    product: str
    siblings: list[str] = field(default_factory=list)


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
        self.resting: dict[int, dict[str, Resting]] = {}  # token -> tag -> order (no key when none)
        self.wake: dict[int, tuple[float, float]] = {}  # token -> (a bar low at or below, a high at or above)
        self.price = price  # token -> last price in rupees, shared with the strategies' context
        self.open_tokens: set[int] = set()  # tokens with a position open (marked to market each bar)
        self.prev_close: dict[int, int] = {}  # token -> previous day's close (circuit bands)
        self.strategy_qty: dict[tuple[str, int], int] = {}
        self.seq = 0
        self.day = ""

    # ---- time ---------------------------------------------------------------------------------

    def new_day(self, day: str) -> None:
        if self.day:
            self.risk.new_day(day)
        self.day = day

    def band(self, inst: Instrument) -> tuple[int, int] | None:
        prev = self.prev_close.get(inst.instrument_token)
        if not prev:
            return None
        return circuit_band(prev, BAND_PCT.get(inst.instrument_type, 50.0), tick_paise(inst))

    # ---- signals ------------------------------------------------------------------------------

    def submit(self, sig: Signal | SignalGroup) -> list[StrategyOutcome]:
        """Risk, then the order plan, filled at the current price (the bar's open: the first tick after
        the bar that produced the signal, where the live worker's order reaches the broker)."""
        if isinstance(sig, SignalGroup):
            return [self._outcome(sig.strategy_id, "refused", signal_id=sig.id, code="UNSUPPORTED",
                                  reason="multi-leg groups are not backtested yet")]
        inst = self.instruments.get(sig.instrument_token)
        price = self.paise(sig.instrument_token)
        key = f"{sig.exchange}:{sig.tradingsymbol}"
        ctx = context_from(self.tracker, None, sig, prices={key: price} if price else {},
                           lot_sizes={key: inst.lot_size if inst else 1},
                           open_orders=sum(len(r) for r in self.resting.values()))
        verdict = self.risk.validate_signal(sig, ctx)
        if not verdict.ok:
            self.rec.refusal(self.now, sig, verdict.code, verdict.reason)
            return [self._outcome(sig.strategy_id, "refused", signal_id=sig.id, token=sig.instrument_token,
                                  code=verdict.code, reason=verdict.reason)]
        if inst is None or not price:
            self.rec.refusal(self.now, sig, "NO_PRICE", "no price for the traded instrument")
            return [self._outcome(sig.strategy_id, "rejected", signal_id=sig.id, token=sig.instrument_token,
                                  code="NO_PRICE", reason="no price for the traded instrument")]
        out = [self._outcome(sig.strategy_id, "accepted", signal_id=sig.id, token=sig.instrument_token)]
        if sig.intent == "exit":
            self.cancel_protective(sig.strategy_id, sig.instrument_token)
        filled = 0
        for req in signal_requests(sig, inst, -1, quantity=(verdict.quantities or (sig.quantity,))[0]):
            fill = self.fills.market(req.transaction_type.value, price, tick_paise(inst), band=self.band(inst))
            self.rec.order(self.now, req, "COMPLETE", fill, sig.strategy_id)
            out.append(self._fill(sig.strategy_id, sig.id, req.kind, inst, req.transaction_type.value, req.quantity,
                                  fill, req.product.value, "filled"))
            filled += req.quantity
        if sig.intent == "entry" and (sig.stop_loss or sig.target):
            self._protect(sig, filled, inst)
        return out

    def _protect(self, sig: Signal, filled: int, inst: Instrument) -> None:
        reqs = protective_requests(sig, filled, inst, SL_SLIPPAGE_PCT)
        book = self.resting.setdefault(inst.instrument_token, {})
        tags = [r.tag for r in reqs]
        for r in reqs:
            book[r.tag] = Resting(r.tag, sig.id, sig.strategy_id, r.kind, inst, r.transaction_type.value, r.quantity,
                                  r.order_type, r.price, r.trigger_price, r.product.value,
                                  [t for t in tags if t != r.tag])
            self.rec.order(self.now, r, "TRIGGER PENDING" if r.order_type is OrderType.SL else "OPEN", 0,
                           sig.strategy_id)
        self._rewake(inst.instrument_token)

    def _rewake(self, token: int) -> None:
        """The bar range that can touch any resting order of ``token``: a bar entirely inside it is
        skipped with two comparisons (the fill model is asked only when a level is within reach)."""
        book = self.resting.get(token)
        if not book:
            self.resting.pop(token, None)
            self.wake.pop(token, None)
            return
        low, high = -1.0, float("inf")
        for r in book.values():
            slip = self.fills.slippage_ticks * tick_paise(r.inst)
            stop = r.order_type is not OrderType.LIMIT
            level = (r.trigger if stop else r.price + (slip if r.side == "SELL" else -slip)) / 100
            if (r.side == "BUY") == stop:  # buy stops and sell limits wait for the price to rise
                high = min(high, level)
            else:
                low = max(low, level)
        self.wake[token] = (low, high)

    def cancel_protective(self, strategy_id: str, token: int) -> None:
        book = self.resting.get(token)
        for tag in [t for t, r in (book or {}).items() if r.strategy_id == strategy_id]:
            self.rec.order_status(tag, "CANCELLED")
            del book[tag]
        self._rewake(token)

    # ---- bars ---------------------------------------------------------------------------------

    def on_path(self, token: int, path: tuple[int, int, int, int]) -> list[StrategyOutcome]:
        """Resting orders of ``token`` against the bar's path; of an OCO pair the first reached fills."""
        book = self.resting.get(token)
        if not book:
            return []
        hits = []
        for r in book.values():
            tick = tick_paise(r.inst)
            if r.order_type is OrderType.LIMIT:
                got = self.fills.limit(r.side, r.price, path, tick)
            else:
                got = self.fills.stop(r.side, r.trigger, r.price if r.order_type is OrderType.SL else None, path,
                                      tick, band=self.band(r.inst))
            if got is not None:
                hits.append((got[0], r.kind != "stop_loss", r.tag, got[1]))  # ties: the stop-loss first
        out = []
        for _, _, tag, price in sorted(hits):
            r = book.pop(tag, None)
            if r is None:
                continue  # its sibling filled first
            for sibling in r.siblings:
                if book.pop(sibling, None) is not None:
                    self.rec.order_status(sibling, "CANCELLED")
            self.rec.order_status(tag, "COMPLETE", price, self.now)
            out.append(self._fill(r.strategy_id, r.signal_id, r.kind, r.inst, r.side, r.quantity, price, r.product,
                                  "protective_fill"))
        self._rewake(token)
        return out

    def paise(self, token: int) -> int:
        return int(self.price.get(token, 0.0) * 100 + 0.5)

    def mark(self, token: int, price: int) -> None:
        """A bar's close on an open position: marked to market, the kill switch fed (as live, on ticks)."""
        self.tracker.mark(token, price)
        t = self.tracker
        self.risk.on_pnl(t.realised, t.unrealised, "tick", t.exposure)

    def end_of_day(self) -> list[StrategyOutcome]:
        """The broker's intraday square-off: open MIS positions closed at the last price, day orders
        cancelled (Kite's DAY validity)."""
        for token in list(self.resting):
            for tag in list(self.resting[token]):
                self.rec.order_status(tag, "CANCELLED")
            self.resting[token].clear()
            self._rewake(token)
        out = []
        for (strategy_id, token), qty in list(self.strategy_qty.items()):
            inst = self.instruments[token]
            if not qty or self._product(strategy_id, token) != "MIS":
                continue
            side = "SELL" if qty > 0 else "BUY"
            price = self.fills.market(side, self.paise(token), tick_paise(inst), band=self.band(inst))
            self.rec.external_order(self.now, strategy_id, inst, side, abs(qty), price, "MIS square-off")
            out.append(self._fill(strategy_id, "", "external", inst, side, abs(qty), price, "MIS", "external",
                                  reason="MIS auto square-off at the close"))
        for token in self.price:
            self.prev_close[token] = self.paise(token)
        return out

    def _product(self, strategy_id: str, token: int) -> str:
        return self.rec.products.get((strategy_id, token), "MIS")

    # ---- fills and outcomes -------------------------------------------------------------------

    def _fill(self, strategy_id: str, signal_id: str, kind: str, inst: Instrument, side: str, qty: int, price: int,
              product: str, outcome: str, reason: str = "") -> StrategyOutcome:
        token = inst.instrument_token
        closed = self.tracker.on_fill(strategy_id=strategy_id, exchange=inst.exchange,
                                      tradingsymbol=inst.tradingsymbol, transaction_type=side, quantity=qty,
                                      price=price, instrument_token=token, product=product, timestamp=ist.stamp(self.now))
        self.tracker.mark(token, self.paise(token) or price)
        cost = charges_paise(inst.exchange, inst.instrument_type, product, side, qty, price, on=ist.now(self.now).date())
        key = (strategy_id, token)
        held = self.strategy_qty.get(key, 0) + (qty if side == "BUY" else -qty)
        self.strategy_qty[key] = held
        if any(q for (_, t), q in self.strategy_qty.items() if t == token):
            self.open_tokens.add(token)
        else:
            self.open_tokens.discard(token)
        self.rec.products[key] = product
        self.rec.fill(self.now, strategy_id, signal_id, kind, inst, side, qty, price, cost, closed)
        self.risk.on_pnl(self.tracker.realised, self.tracker.unrealised, "fill", self.tracker.exposure)
        return self._outcome(strategy_id, outcome, signal_id=signal_id, token=token, order_kind=kind,
                             transaction_type=TransactionType(side), quantity=qty, price=price, position=held,
                             reason=reason)

    def _outcome(self, strategy_id: str, kind: str, *, signal_id: str = "", token: int = 0, **kw) -> StrategyOutcome:
        self.seq += 1
        inst = self.instruments.get(token)
        return StrategyOutcome(user_id=self.user_id, strategy_id=strategy_id, kind=kind, seq=self.seq,
                               signal_id=signal_id, instrument_token=token,
                               exchange=inst.exchange if inst else "", tradingsymbol=inst.tradingsymbol if inst else "",
                               ts=self.now * 1_000_000_000, **kw)

