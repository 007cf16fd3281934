from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from shared.messages import Bar, TransactionType
from strategy_worker.indicators import RSI as RSIIndicator
from strategy_worker.strategies.base import BaseStrategy, clamp01
from strategy_worker.strategies.params import EquityParams


class RSIStrategy(BaseStrategy):
    """RSI reversal (Wilder's RSI, default 14, 30/70).

    Rules: RSI crossing up through ``oversold`` → long; crossing down through ``overbought`` →
    short. Exit a long when RSI reaches ``exit_long`` (50 by default) and a short at ``exit_short``.
    Stop-loss ``stop_pct`` from the entry, target ``reward`` x that. Confidence grows the deeper
    the RSI had gone past the threshold.
    """

    name = "rsi"
    description = "Buy when RSI recovers from oversold, sell when it falls back from overbought."

    class Params(EquityParams):
        period: Annotated[int, Meta(ge=2, le=100, description="RSI period (bars)")] = 14
        oversold: Annotated[float, Meta(ge=1, le=49, description="Oversold level")] = 30.0
        overbought: Annotated[float, Meta(ge=51, le=99, description="Overbought level")] = 70.0
        exit_long: Annotated[float, Meta(ge=1, le=99, description="RSI that closes a long")] = 50.0
        exit_short: Annotated[float, Meta(ge=1, le=99, description="RSI that closes a short")] = 50.0
        stop_pct: Annotated[float, Meta(ge=0.001, le=0.2, description="Stop-loss as a fraction of price")] = 0.01
        reward: Annotated[float, Meta(ge=0.5, le=10, description="Target as a multiple of the stop")] = 2.0

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.rsi = RSIIndicator(self.params.period)
        self._prev: float | None = None
        self._extreme = 50.0

    def on_bar(self, bar: Bar) -> list:
        value = self.rsi.update(bar.close)
        if value is None:
            return []
        prev, self._prev = self._prev, value
        p = self.params
        self._extreme = min(self._extreme, value) if value < 50 else max(self._extreme, value)
        if prev is None:
            return []
        held = self.held()
        if held > 0 and value >= p.exit_long:
            return [self.exit(0.8, f"RSI {value:.1f} reached {p.exit_long:g}")]
        if held < 0 and value <= p.exit_short:
            return [self.exit(0.8, f"RSI {value:.1f} fell to {p.exit_short:g}")]
        if held:
            return []
        if prev < p.oversold <= value:
            conf = 0.5 + 0.5 * clamp01((p.oversold - self._extreme) / p.oversold)
            return [self.entry(TransactionType.BUY, conf, f"RSI crossed up through {p.oversold:g} ({value:.1f})",
                               p.stop_pct, p.stop_pct * p.reward, price=bar.close)]
        if prev > p.overbought >= value:
            conf = 0.5 + 0.5 * clamp01((self._extreme - p.overbought) / (100 - p.overbought))
            return [self.entry(TransactionType.SELL, conf, f"RSI crossed down through {p.overbought:g} ({value:.1f})",
                               p.stop_pct, p.stop_pct * p.reward, price=bar.close)]
        return []
