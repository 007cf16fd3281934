from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from shared.messages import Bar, TransactionType
from strategy_worker.indicators import ATR, EMA
from strategy_worker.strategies.param_rules import ordered
from strategy_worker.strategies.base import BaseStrategy, clamp01
from strategy_worker.strategies.registry import register


@register
class EMACrossover(BaseStrategy):
    """EMA crossover.

    Rules: when the fast EMA closes above the slow EMA (a golden cross) go long; when it closes
    below (a death cross) go short. An opposite cross first exits the open position; with
    ``reverse`` it also enters the other way. Stop-loss ``atr_stop`` x ATR(14) from the entry,
    target ``reward`` x that distance. Confidence grows with the gap between the EMAs in ATRs.
    """

    name = "ema_crossover"
    description = "Fast/slow EMA cross: long on a golden cross, short on a death cross."

    class Params(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
        fast: Annotated[int, Meta(ge=2, le=200, description="Fast EMA period (bars)")] = 50
        slow: Annotated[int, Meta(ge=3, le=500, description="Slow EMA period (bars)")] = 200
        atr_stop: Annotated[float, Meta(ge=0.1, le=10, description="Stop distance in ATRs")] = 2.0
        reward: Annotated[float, Meta(ge=0.5, le=10, description="Target distance as a multiple of the stop")] = 2.0
        lots: Annotated[int, Meta(ge=1, le=50, description="Lots per trade (F&O / indices)")] = 1
        quantity: Annotated[int, Meta(ge=1, le=100_000, description="Shares per trade (equities)")] = 1
        reverse: Annotated[bool, Meta(description="Enter the other way after an exit")] = True
        intraday: Annotated[bool, Meta(description="MIS (intraday) rather than CNC/NRML")] = True

        def __post_init__(self) -> None:
            ordered("fast", self.fast, "slow", self.slow, "must be shorter than")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fast = EMA(self.params.fast)
        self.slow = EMA(self.params.slow)
        self.atr = ATR(14)
        self._prev_diff: float | None = None

    def on_bar(self, bar: Bar) -> list:
        fast, slow = self.fast.update(bar.close), self.slow.update(bar.close)
        atr = self.atr.update(bar.high, bar.low, bar.close)
        if fast is None or slow is None:
            return []
        diff, prev = fast - slow, self._prev_diff
        self._prev_diff = diff
        if prev is None or (prev <= 0) == (diff <= 0):
            return []
        up = diff > 0
        out = []
        held = self.held(bar.instrument_token)
        if held and (held > 0) != up:
            out.append(self.exit(bar.instrument_token, 0.9, f"EMA{self.params.fast} crossed "
                                                            f"{'above' if up else 'below'} EMA{self.params.slow}"))
            if not self.params.reverse:
                return [s for s in out if s]
        if not self.held(bar.instrument_token):
            vol = atr or abs(diff)
            stop_pct = self.params.atr_stop * vol / bar.close if bar.close else 0.01
            conf = 0.5 + 0.5 * clamp01(abs(diff) / (vol or 1))
            out.append(self.entry(bar.instrument_token, TransactionType.BUY if up else TransactionType.SELL, conf,
                                  f"{'golden' if up else 'death'} cross: EMA{self.params.fast} {fast:.2f} "
                                  f"{'>' if up else '<'} EMA{self.params.slow} {slow:.2f}",
                                  stop_pct, stop_pct * self.params.reward, price=bar.close))
        return [s for s in out if s]
