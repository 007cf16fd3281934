"""The strategy API. A strategy is one small class:

    @register
    class MyStrategy(BaseStrategy):
        name = "my_strategy"
        description = "What it does, in a trader's words."
        kind = "equity"

        class Params(msgspec.Struct, kw_only=True):
            period: Annotated[int, Meta(ge=2, le=500, description="Lookback in bars")] = 20

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.sma = SMA(self.params.period)

        def on_bar(self, bar):
            ...  # update indicators (O(1)), return [self.entry(...)] / [self.exit(...)] / []

The worker validates params against ``Params`` (bad values are refused naming the field and the
allowed range), feeds completed bars of the strategy's tokens to ``on_bar`` (and ticks to
``on_tick``), publishes what they return, and snapshots ``snapshot()`` so a restarted worker
resumes with the same position instead of entering again.
"""

from __future__ import annotations

import copy
import itertools
import math
import time
from collections.abc import Callable
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
    Tick,
    TransactionType,
    to_paise,
)
from shared.options.oi import OITracker

AnyOut = Signal | SignalGroup


class StrategyContext:
    """What the worker gives a strategy: instruments, the last tick of each token, the clock."""

    def __init__(self, instruments: list[Instrument], last_ticks: dict[int, Tick],
                 clock: Callable[[], int] = lambda: int(time.time())) -> None:
        self.instruments = instruments
        self.by_token = {i.instrument_token: i for i in instruments}
        self.by_symbol = {f"{i.exchange}:{i.tradingsymbol}": i for i in instruments}
        self.last_ticks = last_ticks
        self.clock = clock  # exchange time (epoch s) of the latest tick seen
        self._futures: dict[tuple, Instrument | None] = {}
        self.oi: dict[tuple[str, Any], OITracker] = {}  # (underlying name, expiry) -> OI by strike
        self._ids = itertools.count(1)
        self._id_prefix = f"{time.time_ns():x}"

    def track_oi(self, tick: Tick) -> None:
        """Feed an option tick's open interest to its chain's tracker (O(1))."""
        inst = self.by_token.get(tick.instrument_token)
        if inst is None or inst.instrument_type not in ("CE", "PE"):
            return
        tracker = self.oi.get((inst.name, inst.expiry))
        if tracker is None:
            tracker = self.oi[(inst.name, inst.expiry)] = OITracker({})
        tracker.strike_of[tick.instrument_token] = (inst.strike, inst.instrument_type)
        tracker.update(tick.instrument_token, tick.oi)

    def new_signal_id(self) -> str:
        return f"{self._id_prefix}{next(self._ids):x}"

    def ltp(self, token: int) -> float | None:
        t = self.last_ticks.get(token)
        return t.last_price if t else None

    def nearest_future(self, name: str) -> Instrument | None:
        """Cached per instrument list: strategies ask on every bar, and Kite's list is ~100k rows."""
        if len(self._futures) > 64:  # lists replaced over time: forget the old ones
            self._futures.clear()
        key = (id(self.instruments), len(self.instruments), name)
        if key not in self._futures:
            futs = [i for i in self.instruments if i.name == name and i.instrument_type == "FUT" and i.expiry]
            self._futures[key] = min(futs, key=lambda i: i.expiry) if futs else None
        return self._futures[key]

    def underlying_name(self, token: int) -> str:
        inst = self.by_token.get(token)
        if inst is None:
            return ""
        if inst.segment == "INDICES":
            return {"NIFTY 50": "NIFTY", "NIFTY BANK": "BANKNIFTY", "NIFTY FIN SERVICE": "FINNIFTY"}.get(
                inst.tradingsymbol, inst.tradingsymbol)
        return inst.name if inst.instrument_type in ("FUT", "CE", "PE") else inst.tradingsymbol


class BaseStrategy:
    name: ClassVar[str]
    description: ClassVar[str]
    kind: ClassVar[Literal["equity", "options"]] = "equity"
    Params: ClassVar[type[msgspec.Struct]]
    interval: ClassVar[str] = "5minute"

    def __init__(self, strategy_id: str, user_id: str, params: msgspec.Struct, tokens: list[int],
                 ctx: StrategyContext) -> None:
        self.strategy_id = strategy_id
        self.user_id = user_id
        self.params = params
        self.tokens = list(tokens)
        self.ctx = ctx
        self.position: dict[int, int] = {}  # traded token -> signed quantity this strategy holds
        self.state: dict[str, Any] = {}  # anything else a strategy must survive a restart with
        self.last_tick: Tick | None = None

    # ---- overridables -------------------------------------------------------------------------

    def on_bar(self, bar: Bar) -> list[AnyOut]:
        return []

    def on_tick(self, tick: Tick) -> list[AnyOut]:
        return []

    def warm_up(self, bar: Bar) -> None:
        """Seed indicators from history without trading (default: run on_bar and drop signals).
        Position and state are put back: history neither opens a structure that was never
        traded nor closes one a restarted worker restored."""
        position, state = dict(self.position), copy.deepcopy(self.state)
        self.on_bar(bar)
        self.position, self.state = position, state

    def required_tokens(self) -> set[int]:
        """Tokens whose ticks the strategy needs: its own, and what it trades them through."""
        out = set(self.tokens)
        for t in self.tokens:
            target = self.tradable_for(t)
            if target:
                out.add(target[0].instrument_token)
        return out

    def snapshot(self) -> dict[str, Any]:
        return {"position": {str(k): v for k, v in self.position.items()}, "state": self.state}

    def restore(self, snap: dict[str, Any]) -> None:
        self.position = {int(k): int(v) for k, v in snap.get("position", {}).items()}
        self.state = dict(snap.get("state", {}))

    # ---- helpers for equity-style strategies --------------------------------------------------

    def tradable_for(self, token: int) -> tuple[Instrument, int] | None:
        """The instrument a signal on ``token`` trades, and its quantity: an index is traded
        through its nearest future (``lots`` x lot size), a stock in ``quantity`` shares."""
        inst = self.ctx.by_token.get(token)
        if inst is None:
            return None
        if inst.segment == "INDICES":
            fut = self.ctx.nearest_future(self.ctx.underlying_name(token))
            return (fut, getattr(self.params, "lots", 1) * fut.lot_size) if fut else None
        if inst.instrument_type in ("FUT", "CE", "PE"):
            return inst, getattr(self.params, "lots", 1) * inst.lot_size
        return inst, getattr(self.params, "quantity", 1)

    def _signal(self, token: int, side: TransactionType, intent: str, confidence: float, reason: str,
                stop_pct: float | None = None, target_pct: float | None = None,
                quantity: int | None = None, price: float | None = None) -> Signal | None:
        target = self.tradable_for(token)
        if target is None:
            return None
        inst, qty = target
        qty = quantity or qty
        # the traded instrument's own price; an index level stands in until its future has ticked
        ref = self.ctx.ltp(inst.instrument_token) or price or self.ctx.ltp(token) or 0.0
        sign = 1 if side is TransactionType.BUY else -1
        stop = target_px = None
        if intent == "entry" and ref and stop_pct:
            stop = self._round(ref * (1 - sign * stop_pct), inst.tick_size)
            target_px = self._round(ref * (1 + sign * (target_pct or 2 * stop_pct)), inst.tick_size)
        tick = self.last_tick
        product = Product.MIS if getattr(self.params, "intraday", True) else (
            Product.CNC if inst.instrument_type == "EQ" else Product.NRML)
        sig = Signal(
            id=self.ctx.new_signal_id(), user_id=self.user_id, strategy_id=self.strategy_id, strategy=self.name,
            exchange=Exchange(inst.exchange), tradingsymbol=inst.tradingsymbol,
            instrument_token=inst.instrument_token, transaction_type=side, quantity=qty, product=product,
            order_type=OrderType.MARKET, price=0, stop_loss=stop, target=target_px, intent=intent,
            confidence=max(0.0, min(1.0, round(confidence, 4))), reason=reason,
            tick_ts=(tick.exchange_timestamp or 0) if tick else 0, tick_received_at=tick.received_at if tick else 0,
            created_at=time.time_ns(),
        )
        held = self.position.get(inst.instrument_token, 0)
        self.position[inst.instrument_token] = held + sign * qty
        return sig

    def entry(self, token: int, side: TransactionType, confidence: float, reason: str, stop_pct: float,
              target_pct: float | None = None, price: float | None = None) -> Signal | None:
        """An entry with stop-loss and target ``stop_pct`` / ``target_pct`` (default twice the stop)
        away from the traded instrument's last price (``price``, e.g. the bar's close, until it
        has ticked). The strategy's position in the traded instrument is updated."""
        return self._signal(token, side, "entry", confidence, reason, stop_pct, target_pct, price=price)

    def exit(self, token: int, confidence: float, reason: str) -> Signal | None:
        target = self.tradable_for(token)
        if target is None:
            return None
        held = self.position.get(target[0].instrument_token, 0)
        if not held:
            return None
        side = TransactionType.SELL if held > 0 else TransactionType.BUY
        return self._signal(token, side, "exit", confidence, reason, quantity=abs(held))

    def held(self, token: int) -> int:
        target = self.tradable_for(token)
        return self.position.get(target[0].instrument_token, 0) if target else 0

    @staticmethod
    def _round(price: float, tick: float) -> int:
        """Rupees to paise on the instrument's tick grid."""
        tick_p = to_paise(tick) if tick else 5
        return int(round(to_paise(round(price, 2)) / tick_p)) * tick_p

    def group(self, structure: str, underlying: str, legs: list[Leg], intent: str, confidence: float, reason: str,
              stop_loss: int | None = None, target: int | None = None, metadata: dict | None = None) -> SignalGroup:
        tick = self.last_tick
        return SignalGroup(
            id=self.ctx.new_signal_id(), user_id=self.user_id, strategy_id=self.strategy_id, strategy=self.name,
            structure=structure, underlying=underlying, legs=legs, intent=intent,
            confidence=max(0.0, min(1.0, round(confidence, 4))), reason=reason, stop_loss=stop_loss, target=target,
            tick_ts=(tick.exchange_timestamp or 0) if tick else 0, tick_received_at=tick.received_at if tick else 0,
            created_at=time.time_ns(), metadata=metadata or {},
        )


def clamp01(x: float) -> float:
    return 0.0 if math.isnan(x) else max(0.0, min(1.0, x))
