"""The strategy API. A strategy is one small class that watches **one symbol** (``self.token``);
a user's strategy on N symbols runs as N instances (``strategy_worker/runner.py``), so indicators,
bars, warm-up and positions never mix symbols. See ``strategy_worker/README.md`` for a complete
example; in short:

* ``on_bar(bar)`` / ``on_tick(tick)`` return the signals to send (``self.entry(...)``,
  ``self.exit(...)``, ``self.group(...)``), or ``[]``. Override ``on_tick`` only if the strategy
  needs ticks: the engine calls it only on strategies that do.
* ``self.position`` is what the broker says the instance holds (traded token -> signed quantity).
  It changes **only** when an outcome arrives from the execution worker — never when a signal is
  emitted. ``on_fill`` / ``on_refused`` / ``on_cancelled`` / ``on_outcome`` hear about each outcome
  (after the position is updated) and may return signals too.
* While a signal on an instrument is in flight, ``entry`` returns None for it; ``exit`` is sized
  from the real position and returns None when flat or already exiting.
"""

from __future__ import annotations

import math
import time
from types import MappingProxyType
from typing import Any, ClassVar, Literal

import msgspec

from shared.kite.models import Instrument
from shared.messages import (
    Bar,
    Exchange,
    Leg,
    OrderType,
    Product,
    Signal,
    SignalGroup,
    StrategyOutcome,
    Tick,
    TransactionType,
    to_paise,
)
from strategy_worker.strategies.book import Book
from strategy_worker.strategies.context import StrategyContext

AnyOut = Signal | SignalGroup


class BaseStrategy:
    name: ClassVar[str]
    description: ClassVar[str]
    kind: ClassVar[Literal["equity", "options"]] = "equity"
    Params: ClassVar[type[msgspec.Struct]]
    interval: ClassVar[str] = "5minute"

    def __init__(self, strategy_id: str, user_id: str, params: msgspec.Struct, token: int,
                 ctx: StrategyContext) -> None:
        self.strategy_id = strategy_id
        self.user_id = user_id
        self.params = params
        self.token = token  # the one symbol this instance watches
        self.ctx = ctx
        self.book = Book()
        self.position = MappingProxyType(self.book.position)  # read-only: outcomes change it
        self.state: dict[str, Any] = {}  # anything else the instance must survive a restart with
        self.warming = False  # replaying history: nothing it returns is sent
        self.last_bar = 0  # start of the last bar it ran (live or history)
        self.sent = 0  # signals of this instance published (the engine counts them; kept across restarts)

    @classmethod
    def wants_ticks(cls) -> bool:
        return cls.on_tick is not BaseStrategy.on_tick

    @property
    def last_tick(self) -> Tick | None:
        return self.ctx.last_ticks.get(self.token)

    # ---- overridables -------------------------------------------------------------------------

    def on_bar(self, bar: Bar) -> list[AnyOut]:
        return []

    def on_tick(self, tick: Tick) -> list[AnyOut]:
        return []

    def on_fill(self, outcome: StrategyOutcome) -> list[AnyOut]:
        """A fill of its entry or exit, its stop-loss or target (``protective_fill``), or a change
        the broker made on its own (``external``: MIS square-off, expiry, a manual trade)."""
        return []

    def on_refused(self, outcome: StrategyOutcome) -> list[AnyOut]:
        """A signal refused (here, or by risk) or an order the broker rejected: ``code``, ``reason``."""
        return []

    def on_cancelled(self, outcome: StrategyOutcome) -> list[AnyOut]:
        """An order ended with quantity unfilled, or a multi-leg group was rolled back."""
        return []

    def on_outcome(self, outcome: StrategyOutcome) -> list[AnyOut]:
        """Every outcome (``accepted`` included), after the specific hook."""
        return []

    def required_tokens(self) -> set[int]:
        """Tokens whose ticks the strategy needs: its symbol, and what it trades it through."""
        return {self.token} | self.traded_tokens()

    def traded_tokens(self) -> set[int]:
        """Instruments this instance may hold or be trading."""
        out = set(self.book.position)
        for f in self.book.flights.values():
            out.update(f.want)
        target = self.tradable()
        if target:
            out.add(target[0].instrument_token)
        return out

    def snapshot(self) -> dict[str, Any]:
        return {"book": self.book.snapshot(), "state": self.state, "sent": self.sent}

    def restore(self, snap: dict[str, Any]) -> None:
        self.book.restore(snap.get("book", {}))
        self.state = dict(snap.get("state", {}))
        self.sent = snap.get("sent", 0)

    # ---- helpers for single-instrument strategies ---------------------------------------------

    def tradable(self) -> tuple[Instrument, int] | None:
        """The instrument this instance's signals trade and its quantity (see ``ctx.tradable``)."""
        return self.ctx.tradable(self.token, getattr(self.params, "lots", 1), getattr(self.params, "quantity", 1))

    def held(self) -> int:
        """Signed quantity held in the traded instrument (from fills only)."""
        target = self.tradable()
        return self.book.held(target[0].instrument_token) if target else 0

    def in_flight(self) -> bool:
        target = self.tradable()
        return bool(target) and self.book.busy(target[0].instrument_token)

    def entry(self, side: TransactionType, confidence: float, reason: str, stop_pct: float,
              target_pct: float | None = None, price: float | None = None) -> Signal | None:
        """An entry with stop-loss and target ``stop_pct`` / ``target_pct`` (default twice the stop)
        away from the traded instrument's last price (``price``, e.g. the bar's close, until it
        has ticked). None while warming, while anything is held or in flight on the instrument."""
        target = self.tradable()
        if self.warming or target is None:
            return None
        inst, qty = target
        if self.book.held(inst.instrument_token) or self.book.busy(inst.instrument_token):
            return None
        if side is TransactionType.SELL and self.product(inst) is Product.CNC:
            return None  # India has no delivery short: a CNC strategy only sells what it holds (its exit)
        # the traded instrument's own price; the symbol's stands in until it has ticked
        ref = self.ctx.ltp(inst.instrument_token) or price or self.ctx.ltp(self.token) or 0.0
        sign = 1 if side is TransactionType.BUY else -1
        stop = target_px = None
        if ref and stop_pct:
            stop = self._round(ref * (1 - sign * stop_pct), inst.tick_size)
            target_px = self._round(ref * (1 + sign * (target_pct or 2 * stop_pct)), inst.tick_size)
        return self._signal(inst, side, qty, "entry", confidence, reason, stop, target_px, ref)

    def exit(self, confidence: float, reason: str) -> Signal | None:
        """Close what is really held in the traded instrument; None when flat or while anything on
        it is in flight (a partly filled entry still working, an exit already sent)."""
        target = self.tradable()
        if self.warming or target is None:
            return None
        inst = target[0]
        held = self.book.held(inst.instrument_token)
        if not held or self.book.busy(inst.instrument_token):
            return None
        side = TransactionType.SELL if held > 0 else TransactionType.BUY
        return self._signal(inst, side, abs(held), "exit", confidence, reason, None, None,
                            self.ctx.ltp(inst.instrument_token) or 0.0)

    def _signal(self, inst: Instrument, side: TransactionType, qty: int, intent: str, confidence: float,
                reason: str, stop: int | None, target: int | None, ref: float) -> Signal:
        tick = self.last_tick
        product = self.product(inst)
        return Signal(
            id=self.ctx.new_signal_id(), user_id=self.user_id, strategy_id=self.strategy_id, strategy=self.name,
            exchange=Exchange(inst.exchange), tradingsymbol=inst.tradingsymbol,
            instrument_token=inst.instrument_token, transaction_type=side, quantity=qty, product=product,
            order_type=OrderType.MARKET, price=0, stop_loss=stop, target=target, intent=intent,
            confidence=clamp01(round(confidence, 4)), reason=reason,
            tick_ts=(tick.exchange_timestamp or 0) if tick else 0, tick_received_at=tick.received_at if tick else 0,
            created_at=time.time_ns(), metadata={"ref_price": round(ref, 2)} if ref else {},
        )

    def product(self, inst: Instrument) -> Product:
        """MIS for an intraday strategy; otherwise CNC for shares (delivery), NRML for F&O."""
        if getattr(self.params, "intraday", True):
            return Product.MIS
        return Product.CNC if inst.instrument_type == "EQ" else Product.NRML

    @staticmethod
    def _round(price: float, tick: float) -> int:
        """Rupees to paise on the instrument's tick grid."""
        tick_p = to_paise(tick) if tick else 5
        return round(to_paise(round(price, 2)) / tick_p) * tick_p

    def group(self, structure: str, underlying: str, legs: list[Leg], intent: str, confidence: float, reason: str,
              stop_loss: int | None = None, target: int | None = None,
              metadata: dict | None = None) -> SignalGroup | None:
        if self.warming:
            return None
        tick = self.last_tick
        return SignalGroup(
            id=self.ctx.new_signal_id(), user_id=self.user_id, strategy_id=self.strategy_id, strategy=self.name,
            structure=structure, underlying=underlying, legs=legs, intent=intent,
            confidence=clamp01(round(confidence, 4)), reason=reason, stop_loss=stop_loss, target=target,
            tick_ts=(tick.exchange_timestamp or 0) if tick else 0, tick_received_at=tick.received_at if tick else 0,
            created_at=time.time_ns(), metadata=metadata or {},
        )


def clamp01(x: float) -> float:
    return 0.0 if math.isnan(x) else max(0.0, min(1.0, x))
