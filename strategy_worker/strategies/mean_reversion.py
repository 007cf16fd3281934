from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from shared.messages import Bar, TransactionType
from strategy_worker.indicators import ZScore
from strategy_worker.strategies.base import BaseStrategy, clamp01
from strategy_worker.strategies.param_rules import ordered
from strategy_worker.strategies.params import EquityParams


class MeanReversion(BaseStrategy):
    """Mean reversion on the z-score of price against its rolling mean.

    Rules: z below ``-entry_z`` → long (price stretched down); z above ``entry_z`` → short. Exit
    when |z| comes back under ``exit_z``. Stop-loss ``stop_z`` standard deviations beyond the
    entry, target at the mean. Confidence grows with |z|.
    """

    name = "mean_reversion"
    description = "Fade moves of more than N standard deviations from the rolling mean."

    class Params(EquityParams):
        period: Annotated[int, Meta(ge=5, le=500, description="Rolling window (bars)")] = 20
        entry_z: Annotated[float, Meta(ge=0.5, le=5, description="|z| that opens a trade")] = 2.0
        exit_z: Annotated[float, Meta(ge=0, le=3, description="|z| that closes it")] = 0.5
        stop_z: Annotated[float, Meta(ge=0.5, le=5, description="Stop distance beyond the entry, in std devs")] = 1.5

        def __post_init__(self) -> None:
            ordered("exit_z", self.exit_z, "entry_z", self.entry_z, "must be below")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.z = ZScore(self.params.period)

    def on_bar(self, bar: Bar) -> list:
        z = self.z.update(bar.close)
        if z is None:
            return []
        p, held = self.params, self.held()
        if held and abs(z) <= p.exit_z:
            return [self.exit(0.8, f"z-score back to {z:.2f}")]
        if held or abs(z) < p.entry_z:
            return []
        sd, mean = self.z.std.value or 0.0, self.z.std.mean or bar.close
        stop_pct = p.stop_z * sd / bar.close if bar.close else 0.01
        target_pct = abs(bar.close - mean) / bar.close if bar.close else stop_pct
        side = TransactionType.BUY if z < 0 else TransactionType.SELL
        conf = 0.5 + 0.5 * clamp01((abs(z) - p.entry_z) / p.entry_z)
        return [self.entry(side, conf, f"z-score {z:.2f} beyond ±{p.entry_z:g} (mean {mean:.2f})", stop_pct,
                           target_pct, price=bar.close)]
