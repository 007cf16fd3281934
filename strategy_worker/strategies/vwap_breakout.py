from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from shared import ist
from shared.messages import Bar, TransactionType
from strategy_worker.indicators import SMA, VWAP
from strategy_worker.strategies.base import BaseStrategy, clamp01
from strategy_worker.strategies.params import EquityParams


class VWAPBreakout(BaseStrategy):
    """VWAP breakout.

    Rules: a bar closing more than ``band_pct`` above the session VWAP, on volume above
    ``volume_factor`` x its average, after closing at or below it → long; the mirror image below →
    short. Exit when price closes back across the VWAP. Stop-loss at the VWAP (at least
    ``min_stop_pct``), target ``reward`` x that. Confidence grows with the volume surge.
    Indices have no volume: the volume filter is skipped for them.
    """

    name = "vwap_breakout"
    description = "Trade closes that break away from the session VWAP on strong volume."

    class Params(EquityParams):
        band_pct: Annotated[float, Meta(ge=0, le=0.05, description="Distance from VWAP that counts as a break")] = 0.001
        volume_factor: Annotated[float, Meta(ge=0, le=10, description="Volume vs its 20-bar average")] = 1.5
        min_stop_pct: Annotated[float, Meta(ge=0.001, le=0.1, description="Smallest stop, fraction of price")] = 0.003
        reward: Annotated[float, Meta(ge=0.5, le=10, description="Target as a multiple of the stop")] = 2.0

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.vwap = VWAP()
        self.avg_volume = SMA(20)
        self._side = 0  # where the last close was vs VWAP: -1 below, 0 at, 1 above

    def on_bar(self, bar: Bar) -> list:
        typical = (bar.high + bar.low + bar.close) / 3
        vwap = self.vwap.update(typical, bar.volume or 1, ist.day_number(bar.start))
        avg = self.avg_volume.update(bar.volume)
        p = self.params
        band = vwap * p.band_pct
        side = 1 if bar.close > vwap + band else -1 if bar.close < vwap - band else 0
        prev, self._side = self._side, side
        held = self.held()
        if held and ((held > 0 and bar.close < vwap) or (held < 0 and bar.close > vwap)):
            return [self.exit(0.8, f"close {bar.close:.2f} back across VWAP {vwap:.2f}")]
        if held or side == 0 or side == prev:
            return []
        surge = bar.volume / avg if avg else 0.0
        if bar.volume and avg and surge < p.volume_factor:
            return []
        stop_pct = max(p.min_stop_pct, abs(bar.close - vwap) / bar.close)
        conf = 0.5 + 0.5 * clamp01((surge - p.volume_factor) / max(1.0, p.volume_factor)) if bar.volume else 0.6
        return [self.entry(TransactionType.BUY if side > 0 else TransactionType.SELL, conf,
                           f"close {bar.close:.2f} broke {'above' if side > 0 else 'below'} VWAP {vwap:.2f}",
                           stop_pct, stop_pct * p.reward, price=bar.close)]
