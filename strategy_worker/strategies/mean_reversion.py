from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from shared.messages import Bar, TransactionType
from strategy_worker.indicators import ZScore
from strategy_worker.strategies.param_rules import ordered
from strategy_worker.strategies.base import BaseStrategy, clamp01
from strategy_worker.strategies.registry import register


@register
class MeanReversion(BaseStrategy):
    """Mean reversion on the z-score of price against its rolling mean.

    Rules: z below ``-entry_z`` → long (price stretched down); z above ``entry_z`` → short. Exit
    when |z| comes back under ``exit_z``. Stop-loss ``stop_z`` standard deviations beyond the
    entry, target at the mean. Confidence grows with |z|.
    """

    name = "mean_reversion"
    description = "Fade moves of more than N standard deviations from the rolling mean."

    class Params(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
        period: Annotated[int, Meta(ge=5, le=500, description="Rolling window (bars)")] = 20
        entry_z: Annotated[float, Meta(ge=0.5, le=5, description="|z| that opens a trade")] = 2.0
        exit_z: Annotated[float, Meta(ge=0, le=3, description="|z| that closes it")] = 0.5
        stop_z: Annotated[float, Meta(ge=0.5, le=5, description="Stop distance beyond the entry, in std devs")] = 1.5
        lots: Annotated[int, Meta(ge=1, le=50, description="Lots per trade (F&O / indices)")] = 1
        quantity: Annotated[int, Meta(ge=1, le=100_000, description="Shares per trade (equities)")] = 1
        intraday: Annotated[bool, Meta(description="MIS (intraday) rather than CNC/NRML")] = True

        def __post_init__(self) -> None:
            ordered("exit_z", self.exit_z, "entry_z", self.entry_z, "must be below")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.z = ZScore(self.params.period)

    def on_bar(self, bar: Bar) -> list:
        z = self.z.update(bar.close)
        if z is None:
            return []
        p, token = self.params, bar.instrument_token
        held = self.held(token)
        if held and abs(z) <= p.exit_z:
            return [s for s in [self.exit(token, 0.8, f"z-score back to {z:.2f}")] if s]
        if held or abs(z) < p.entry_z:
            return []
        sd, mean = self.z.std.value or 0.0, self.z.std.mean or bar.close
        stop_pct = p.stop_z * sd / bar.close if bar.close else 0.01
        target_pct = abs(bar.close - mean) / bar.close if bar.close else stop_pct
        side = TransactionType.BUY if z < 0 else TransactionType.SELL
        conf = 0.5 + 0.5 * clamp01((abs(z) - p.entry_z) / p.entry_z)
        sig = self.entry(token, side, conf, f"z-score {z:.2f} beyond ±{p.entry_z:g}", stop_pct, target_pct, price=bar.close)
        return [sig] if sig else []
