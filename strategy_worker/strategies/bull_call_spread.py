from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from shared.messages import Bar, TransactionType
from strategy_worker.indicators import EMA
from strategy_worker.strategies.param_rules import ordered
from strategy_worker.strategies.option_base import OptionStrategy
from strategy_worker.strategies.registry import register


@register
class BullCallSpread(OptionStrategy):
    """Bull call spread.

    Rules: when the underlying's fast EMA is above its slow EMA (an uptrend) and ATM IV is below
    ``max_iv``, buy the ATM call and sell the call ``width_steps`` strikes higher, ``lots`` lots,
    as one SignalGroup (the bought call is the hedge). Exit the spread at ``target_pct`` gain or
    ``stop_pct`` loss of the debit paid, at the time exit, or on expiry day.
    """

    name = "bull_call_spread"
    description = "Uptrend: buy the ATM call, sell a higher call (defined risk, defined reward)."
    structure = "bull_call_spread"

    class Params(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
        width_steps: Annotated[int, Meta(ge=1, le=20, description="Strikes between the bought and sold legs")] = 4
        fast: Annotated[int, Meta(ge=2, le=100, description="Fast EMA of the underlying (trend filter)")] = 9
        slow: Annotated[int, Meta(ge=3, le=300, description="Slow EMA of the underlying (trend filter)")] = 21
        max_iv: Annotated[float, Meta(ge=0.05, le=2, description="Skip entries when ATM IV is above this")] = 0.6
        lots: Annotated[int, Meta(ge=1, le=50, description="Lots per leg")] = 1
        target_pct: Annotated[float, Meta(ge=0.05, le=5, description="Exit at this gain, fraction of the entry premium")] = 0.5
        stop_pct: Annotated[float, Meta(ge=0.05, le=5, description="Exit at this loss, fraction of the entry premium")] = 1.0
        entry_after_minute: Annotated[int, Meta(ge=555, le=900, description="Earliest entry, minutes after midnight IST")] = 570
        exit_minute: Annotated[int, Meta(ge=600, le=930, description="Time exit, minutes after midnight IST")] = 915
        min_days_to_expiry: Annotated[int, Meta(ge=0, le=60, description="Skip expiries closer than this")] = 0

        def __post_init__(self) -> None:
            ordered("fast", self.fast, "slow", self.slow, "must be shorter than")
            ordered("entry_after_minute", self.entry_after_minute, "exit_minute", self.exit_minute, "must be before")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fast, self.slow = EMA(self.params.fast), EMA(self.params.slow)

    def on_bar(self, bar: Bar) -> list:
        if bar.instrument_token != self.tokens[0]:
            return self.manage(bar) if self.state.get("legs") else []
        fast, slow = self.fast.update(bar.close), self.slow.update(bar.close)
        if self.state.get("legs"):
            return self.manage(bar)
        if fast is None or slow is None or not self.in_entry_window(bar):
            return []
        if not (fast > slow):
            return []
        chain, spot = self.chain(), self.spot() or bar.close
        if chain is None:
            return []
        now, prices = self.ctx.clock(), self.prices()
        fwd = chain.implied_future(spot, prices, now)
        atm = chain.atm(fwd)
        i = chain.strikes.index(atm)
        far = chain.strikes[max(0, min(len(chain.strikes) - 1, i + self.params.width_steps))]
        buy, sell = getattr(atm, "ce"), getattr(far, "ce")
        if buy is None or sell is None or far is atm:
            return []
        iv = self.atm_iv(chain, buy, fwd, now, prices)
        if iv is not None and iv > self.params.max_iv:
            return []
        n = self.params.lots
        legs = [self.leg(buy, TransactionType.BUY, n, hedge=True), self.leg(sell, TransactionType.SELL, n)]
        conf = 0.5 + 0.5 * min(1.0, abs(fast - slow) / (0.002 * bar.close))
        group = self.entry_group(chain.underlying, legs, conf,
                                 f"trend up (EMA{self.params.fast} {fast:.2f} vs EMA{self.params.slow} {slow:.2f}): "
                                 f"buy {buy.strike:g}, sell {sell.strike:g}",
                                 metadata={"expiry": chain.expiry.isoformat(), "forward": round(fwd, 2), "iv": iv})
        return [group]

    def atm_iv(self, chain, inst, fwd, now, prices):
        from shared.options.chain import RATE, years_to_expiry
        from shared.options.iv import IVError, implied_vol_black76

        px = prices.get(inst.instrument_token)
        t = years_to_expiry(chain.expiry, now)
        if not px or t <= 0:
            return None
        try:
            return implied_vol_black76(px, "c" if inst.instrument_type == "CE" else "p", fwd, inst.strike, t, RATE)
        except IVError:
            return None
