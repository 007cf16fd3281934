from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from shared.messages import Bar, TransactionType
from shared.options.chain import Strike
from strategy_worker.strategies.option_base import Market, OptionStrategy
from strategy_worker.strategies.params import OptionParams


class IronCondor(OptionStrategy):
    """Iron condor on the nearest expiry.

    Rules: when flat inside the entry window, sell the call and the put nearest ``short_delta``
    (Black-76 delta off the implied future, IV from live prices) and buy wings ``wing_steps``
    strikes further out, all ``lots`` lots: one SignalGroup, wings marked as hedges. The spot must
    sit between the short strikes (the "profitable zone"). Exit the whole structure at
    ``target_pct`` of the credit captured, at a loss of ``stop_pct`` of it, at the time exit, or on
    expiry day. Confidence grows with the credit relative to the wing width.
    """

    name = "iron_condor"
    description = "Sell an OTM call and put by delta, buy wings: a defined-risk range trade."
    structure = "iron_condor"

    class Params(OptionParams):
        short_delta: Annotated[float, Meta(ge=0.05, le=0.45, description="|delta| of the short strikes")] = 0.2
        wing_steps: Annotated[int, Meta(ge=1, le=20, description="Wing distance beyond the shorts, in strikes")] = 4

    def planned(self, market: Market) -> list[Strike]:
        """Short call, short put, long call wing, long put wing."""
        chain, _, now, prices, fwd = market
        sc = chain.by_delta("CE", self.params.short_delta, fwd, now, prices)
        sp = chain.by_delta("PE", -self.params.short_delta, fwd, now, prices)
        return [sc, sp, chain.step(sc, self.params.wing_steps), chain.step(sp, -self.params.wing_steps)]

    def enter(self, bar: Bar) -> list:
        market = self.market(bar)
        if market is None:
            return []
        chain, spot, now, prices, fwd = market
        sc, sp, lc, lp = self.planned(market)
        if not (sp.strike < spot < sc.strike):
            return []
        if not (sc.ce and lc.ce and sp.pe and lp.pe) or lc.strike <= sc.strike or lp.strike >= sp.strike:
            return []
        n = self.params.lots
        legs = [self.leg(lc.ce, TransactionType.BUY, n, hedge=True), self.leg(lp.pe, TransactionType.BUY, n, hedge=True),
                self.leg(sc.ce, TransactionType.SELL, n), self.leg(sp.pe, TransactionType.SELL, n)]
        width = min(lc.strike - sc.strike, sp.strike - lp.strike) * n * chain.lot_size
        credit = self.premium({x.instrument_token: x.quantity if x.transaction_type is TransactionType.BUY
                               else -x.quantity for x in legs})
        if credit is None:  # a leg not priced yet (just planned: its ticks are on their way)
            return []
        conf = 0.5 + 0.5 * min(1.0, credit / width * 3) if width else 0.5
        return [self.entry_group(chain.underlying, legs, conf,
                                 f"spot {spot:.2f} inside {sp.strike:g}/{sc.strike:g}; wings {lp.strike:g}/{lc.strike:g}",
                                 metadata={"expiry": chain.expiry.isoformat(), "forward": round(fwd, 2)})]
