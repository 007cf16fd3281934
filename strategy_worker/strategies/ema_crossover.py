from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from shared.messages import Bar, StrategyOutcome, TransactionType
from strategy_worker.indicators import ATR, EMA
from strategy_worker.strategies.base import BaseStrategy, clamp01
from strategy_worker.strategies.param_rules import ordered
from strategy_worker.strategies.params import EquityParams


class EMACrossover(BaseStrategy):
    """EMA crossover.

    Rules: when the fast EMA closes above the slow EMA (a golden cross) go long; when it closes
    below (a death cross) go short. An opposite cross first exits the open position; with
    ``reverse`` the other way is entered once that exit has filled (if the EMAs still agree).
    Stop-loss ``atr_stop`` x ATR(14) from the entry, target ``reward`` x that distance. Confidence
    grows with the gap between the EMAs in ATRs.
    """

    name = "ema_crossover"
    description = "Fast/slow EMA cross: long on a golden cross, short on a death cross."

    class Params(EquityParams):
        fast: Annotated[int, Meta(ge=2, le=200, description="Fast EMA period (bars)")] = 50
        slow: Annotated[int, Meta(ge=3, le=500, description="Slow EMA period (bars)")] = 200
        atr_stop: Annotated[float, Meta(ge=0.1, le=10, description="Stop distance in ATRs")] = 2.0
        reward: Annotated[float, Meta(ge=0.5, le=10, description="Target distance as a multiple of the stop")] = 2.0
        reverse: Annotated[bool, Meta(description="Enter the other way after an exit")] = True

        def __post_init__(self) -> None:
            ordered("fast", self.fast, "slow", self.slow, "must be shorter than")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fast = EMA(self.params.fast)
        self.slow = EMA(self.params.slow)
        self.atr = ATR(14)
        self._prev_diff: float | None = None
        self._close = 0.0

    def on_bar(self, bar: Bar) -> list:
        self._close = close = bar.close
        fast, slow = self.fast.update(close), self.slow.update(close)
        atr = self.atr.update(bar.high, bar.low, close)
        if fast is None or slow is None:
            return []
        diff, prev = fast - slow, self._prev_diff
        self._prev_diff = diff
        if prev is None or (prev <= 0) == (diff <= 0):
            return []
        up = diff > 0
        held = self.held()
        if held and (held > 0) != up:
            p = self.params
            return [self.exit(0.9, f"EMA{p.fast} crossed {'above' if up else 'below'} EMA{p.slow}")]
        return [self._enter(fast, slow, atr)]

    def on_fill(self, outcome: StrategyOutcome) -> list:
        """An exit that left the book flat: reverse into the trend the EMAs show now."""
        if not self.params.reverse or outcome.order_kind != "exit" or self.held() or self.in_flight():
            return []
        if self.fast.value is None or self.slow.value is None:
            return []
        return [self._enter(self.fast.value, self.slow.value, self.atr.value)]

    def _enter(self, fast: float, slow: float, atr: float | None):
        up, diff, close, p = fast > slow, fast - slow, self._close, self.params
        vol = atr or abs(diff)
        stop_pct = p.atr_stop * vol / close if close else 0.01
        conf = 0.5 + 0.5 * clamp01(abs(diff) / (vol or 1))
        return self.entry(TransactionType.BUY if up else TransactionType.SELL, conf,
                          f"{'golden' if up else 'death'} cross: EMA{p.fast} {fast:.2f} "
                          f"{'>' if up else '<'} EMA{p.slow} {slow:.2f}",
                          stop_pct, stop_pct * p.reward, price=close)
