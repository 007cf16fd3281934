from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

from shared.messages import Bar, TransactionType
from shared.options.chain import Strike
from strategy_worker.strategies.option_base import Market, OptionStrategy
from strategy_worker.strategies.params import OptionParams


class _Volatility(OptionStrategy):
    """Straddle / strangle: the same life cycle, different strikes."""

    class Params(OptionParams):
        side: Annotated[Literal["short", "long"], Meta(description="Sell premium (short) or buy it (long)")] = "short"
        hedged: Annotated[bool, Meta(description="Buy protective wings on a short structure")] = True
        wing_steps: Annotated[int, Meta(ge=1, le=20, description="Wing distance beyond the sold strikes")] = 6
        strangle_delta: Annotated[float, Meta(ge=0.05, le=0.45, description="|delta| of strangle strikes")] = 0.25

    def strikes(self, chain, spot, fwd, now, prices):
        raise NotImplementedError

    def planned(self, market: Market) -> list[Strike]:
        """The call and put strikes, then the wings of a hedged short."""
        chain, spot, now, prices, fwd = market
        call_strike, put_strike = self.strikes(chain, spot, fwd, now, prices)
        p = self.params
        wings = [chain.step(call_strike, p.wing_steps), chain.step(put_strike, -p.wing_steps)] \
            if p.side == "short" and p.hedged else []
        return [call_strike, put_strike, *wings]

    def enter(self, bar: Bar) -> list:
        market = self.market(bar)
        if market is None:
            return []
        chain, spot, now, prices, fwd = market
        call_strike, put_strike, *wings = self.planned(market)
        if call_strike.ce is None or put_strike.pe is None:
            return []
        p = self.params
        short = p.side == "short"
        side = TransactionType.SELL if short else TransactionType.BUY
        legs = []
        if wings:
            wc, wp = wings
            if wc.ce is None or wp.pe is None or wc.strike <= call_strike.strike or wp.strike >= put_strike.strike:
                return []
            legs += [self.leg(wc.ce, TransactionType.BUY, p.lots, hedge=True),
                     self.leg(wp.pe, TransactionType.BUY, p.lots, hedge=True)]
        legs += [self.leg(call_strike.ce, side, p.lots), self.leg(put_strike.pe, side, p.lots)]
        if self.premium({leg.instrument_token: leg.quantity for leg in legs}) is None:
            return []  # a leg not priced yet (just planned: its ticks are on their way)
        structure = f"hedged_{self.structure}" if short and p.hedged else self.structure
        return [self.entry_group(chain.underlying, legs, 0.6,
                                 f"{p.side} {self.structure} {put_strike.strike:g}/{call_strike.strike:g} around {spot:.2f}",
                                 metadata={"expiry": chain.expiry.isoformat(), "forward": round(fwd, 2)},
                                 structure=structure)]


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


class Strangle(_Volatility):
    """Strangle: an OTM call and put chosen by ``strangle_delta`` (Black-76 off the implied
    future), sold with protective wings by default or bought. Same exits as the straddle."""

    name = "strangle"
    description = "OTM call + put by delta: wider breakevens than a straddle."
    structure = "strangle"

    def strikes(self, chain, spot, fwd, now, prices):
        d = self.params.strangle_delta
        return chain.by_delta("CE", d, fwd, now, prices), chain.by_delta("PE", -d, fwd, now, prices)
