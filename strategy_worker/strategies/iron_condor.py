from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from shared.messages import Bar, TransactionType
from strategy_worker.strategies.param_rules import ordered
from strategy_worker.strategies.option_base import OptionStrategy
from strategy_worker.strategies.registry import register


@register
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

    class Params(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
        short_delta: Annotated[float, Meta(ge=0.05, le=0.45, description="|delta| of the short strikes")] = 0.2
        wing_steps: Annotated[int, Meta(ge=1, le=20, description="Wing distance beyond the shorts, in strikes")] = 4
        lots: Annotated[int, Meta(ge=1, le=50, description="Lots per leg")] = 1
        target_pct: Annotated[float, Meta(ge=0.05, le=5, description="Exit at this gain, fraction of the entry premium")] = 0.5
        stop_pct: Annotated[float, Meta(ge=0.05, le=5, description="Exit at this loss, fraction of the entry premium")] = 1.0
        entry_after_minute: Annotated[int, Meta(ge=555, le=900, description="Earliest entry, minutes after midnight IST")] = 570
        exit_minute: Annotated[int, Meta(ge=600, le=930, description="Time exit, minutes after midnight IST")] = 915
        min_days_to_expiry: Annotated[int, Meta(ge=0, le=60, description="Skip expiries closer than this")] = 0

        def __post_init__(self) -> None:
            ordered("entry_after_minute", self.entry_after_minute, "exit_minute", self.exit_minute, "must be before")

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
        sc = chain.by_delta("CE", self.params.short_delta, fwd, now, prices)
        sp = chain.by_delta("PE", -self.params.short_delta, fwd, now, prices)
        if not (sp.strike < spot < sc.strike):
            return []
        i_c, i_p = chain.strikes.index(sc), chain.strikes.index(sp)
        lc = chain.strikes[min(len(chain.strikes) - 1, i_c + self.params.wing_steps)]
        lp = chain.strikes[max(0, i_p - self.params.wing_steps)]
        if not all(s.ce if k == "c" else s.pe for s, k in ((sc, "c"), (lc, "c"), (sp, "p"), (lp, "p"))) or \
                lc.strike <= sc.strike or lp.strike >= sp.strike:
            return []
        n = self.params.lots
        legs = [self.leg(lc.ce, TransactionType.BUY, n, hedge=True), self.leg(lp.pe, TransactionType.BUY, n, hedge=True),
                self.leg(sc.ce, TransactionType.SELL, n), self.leg(sp.pe, TransactionType.SELL, n)]
        width = min(lc.strike - sc.strike, sp.strike - lp.strike) * n * chain.lot_size
        credit = self.net_premium([{"instrument_token": x.instrument_token, "quantity": x.quantity,
                                    "transaction_type": x.transaction_type.value} for x in legs])
        conf = 0.5 + 0.5 * min(1.0, (credit or 0) / width * 3) if width else 0.5
        group = self.entry_group(chain.underlying, legs, conf,
                                 f"spot {spot:.2f} inside {sp.strike:g}/{sc.strike:g}; wings {lp.strike:g}/{lc.strike:g}",
                                 metadata={"expiry": chain.expiry.isoformat(), "forward": round(fwd, 2)})
        return [group]
