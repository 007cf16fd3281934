from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from shared.messages import Bar, TransactionType
from strategy_worker.strategies.param_rules import ordered
from strategy_worker.strategies.option_base import OptionStrategy
from strategy_worker.strategies.registry import register


class _Volatility(OptionStrategy):
    """Straddle / strangle: the same life cycle, different strikes."""

    class Params(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
        side: Annotated[Literal["short", "long"], Meta(description="Sell premium (short) or buy it (long)")] = "short"
        hedged: Annotated[bool, Meta(description="Buy protective wings on a short structure")] = True
        wing_steps: Annotated[int, Meta(ge=1, le=20, description="Wing distance beyond the sold strikes")] = 6
        strangle_delta: Annotated[float, Meta(ge=0.05, le=0.45, description="|delta| of strangle strikes")] = 0.25
        lots: Annotated[int, Meta(ge=1, le=50, description="Lots per leg")] = 1
        target_pct: Annotated[float, Meta(ge=0.05, le=5, description="Exit at this gain, fraction of the entry premium")] = 0.5
        stop_pct: Annotated[float, Meta(ge=0.05, le=5, description="Exit at this loss, fraction of the entry premium")] = 1.0
        entry_after_minute: Annotated[int, Meta(ge=555, le=900, description="Earliest entry, minutes after midnight IST")] = 570
        exit_minute: Annotated[int, Meta(ge=600, le=930, description="Time exit, minutes after midnight IST")] = 915
        min_days_to_expiry: Annotated[int, Meta(ge=0, le=60, description="Skip expiries closer than this")] = 0

        def __post_init__(self) -> None:
            ordered("entry_after_minute", self.entry_after_minute, "exit_minute", self.exit_minute, "must be before")

    def strikes(self, chain, spot, fwd, now, prices):
        raise NotImplementedError

    def on_bar(self, bar: Bar) -> list:
        if self.state.get("legs"):
            return self.manage(bar)
        if bar.instrument_token != self.tokens[0] or not self.in_entry_window(bar):
            return []
        chain, spot = self.chain(), self.spot() or bar.close
        if chain is None:
            return []
        now, prices = self.ctx.clock(), self.prices()
        fwd = chain.implied_future(spot, prices, now)
        call_strike, put_strike = self.strikes(chain, spot, fwd, now, prices)
        if call_strike.ce is None or put_strike.pe is None:
            return []
        p = self.params
        short = p.side == "short"
        side = TransactionType.SELL if short else TransactionType.BUY
        legs = []
        if short and p.hedged:
            i_c, i_p = chain.strikes.index(call_strike), chain.strikes.index(put_strike)
            wc = chain.strikes[min(len(chain.strikes) - 1, i_c + p.wing_steps)]
            wp = chain.strikes[max(0, i_p - p.wing_steps)]
            if wc.ce is None or wp.pe is None or wc.strike <= call_strike.strike or wp.strike >= put_strike.strike:
                return []
            legs += [self.leg(wc.ce, TransactionType.BUY, p.lots, hedge=True),
                     self.leg(wp.pe, TransactionType.BUY, p.lots, hedge=True)]
        legs += [self.leg(call_strike.ce, side, p.lots), self.leg(put_strike.pe, side, p.lots)]
        structure = f"hedged_{self.structure}" if short and p.hedged else self.structure
        group = self.entry_group(chain.underlying, legs, 0.6,
                                 f"{p.side} {self.structure} {put_strike.strike:g}/{call_strike.strike:g} around {spot:.2f}",
                                 metadata={"expiry": chain.expiry.isoformat(), "forward": round(fwd, 2)},
                                 structure=structure)
        return [group]


@register
class Straddle(_Volatility):
    """Straddle: the ATM call and put of the nearest expiry, sold (default, with protective wings
    ``wing_steps`` strikes away unless ``hedged`` is off) or bought. Exit on ``target_pct`` /
    ``stop_pct`` of the entry premium, at the time exit, or on expiry day."""

    name = "straddle"
    description = "ATM call + put: short (with wings) for range days, long for breakouts."
    structure = "straddle"

    def strikes(self, chain, spot, fwd, now, prices):
        atm = chain.atm(fwd)
        return atm, atm


@register
class Strangle(_Volatility):
    """Strangle: an OTM call and put chosen by ``strangle_delta`` (Black-76 off the implied
    future), sold with protective wings by default or bought. Same exits as the straddle."""

    name = "strangle"
    description = "OTM call + put by delta: wider breakevens than a straddle."
    structure = "strangle"

    def strikes(self, chain, spot, fwd, now, prices):
        d = self.params.strangle_delta
        return chain.by_delta("CE", d, fwd, now, prices), chain.by_delta("PE", -d, fwd, now, prices)
