from __future__ import annotations

from typing import Annotated, ClassVar

from msgspec import Meta

from shared.messages import Bar, TransactionType
from shared.options.chain import RATE, years_to_expiry
from shared.options.iv import IVError, implied_vol_black76
from strategy_worker.indicators import EMA
from shared.options.chain import Strike
from strategy_worker.strategies.option_base import Market, OptionStrategy
from strategy_worker.strategies.param_rules import ordered
from strategy_worker.strategies.params import OptionParams


class DebitSpread(OptionStrategy):
    """Vertical debit spread in the direction of the underlying's trend.

    Rules: when the underlying's fast EMA is on the ``direction`` side of its slow EMA (above for a
    bull call spread, below for a bear put spread) and ATM IV is below ``max_iv``, buy the ATM option
    and sell the one ``width_steps`` strikes further in the trend's direction, ``lots`` lots, as one
    SignalGroup (the bought option is the hedge). Exit at ``target_pct`` gain or ``stop_pct`` loss of
    the debit paid, at the time exit, or on expiry day.
    """

    direction: ClassVar[int]  # +1 calls above, -1 puts below

    class Params(OptionParams):
        width_steps: Annotated[int, Meta(ge=1, le=20, description="Strikes between the bought and sold legs")] = 4
        fast: Annotated[int, Meta(ge=2, le=100, description="Fast EMA of the underlying (trend filter)")] = 9
        slow: Annotated[int, Meta(ge=3, le=300, description="Slow EMA of the underlying (trend filter)")] = 21
        max_iv: Annotated[float, Meta(ge=0.05, le=2, description="Skip entries when ATM IV is above this")] = 0.6

        def __post_init__(self) -> None:
            super().__post_init__()
            ordered("fast", self.fast, "slow", self.slow, "must be shorter than")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fast, self.slow = EMA(self.params.fast), EMA(self.params.slow)

    def observe(self, bar: Bar) -> None:
        self.fast.update(bar.close)
        self.slow.update(bar.close)

    def enter(self, bar: Bar) -> list:
        fast, slow, up = self.fast.value, self.slow.value, self.direction > 0
        if fast is None or slow is None or (fast > slow) != up or fast == slow:
            return []
        market = self.market(bar)
        if market is None:
            return []
        chain, spot, now, prices, fwd = market
        atm, far = self.planned(market)
        kind = "ce" if up else "pe"
        buy, sell = getattr(atm, kind), getattr(far, kind)
        if buy is None or sell is None or far is atm:
            return []
        iv = self.atm_iv(chain, buy, fwd, now, prices)
        if iv is not None and iv > self.params.max_iv:
            return []
        n, p = self.params.lots, self.params
        legs = [self.leg(buy, TransactionType.BUY, n, hedge=True), self.leg(sell, TransactionType.SELL, n)]
        conf = 0.5 + 0.5 * min(1.0, abs(fast - slow) / (0.002 * bar.close))
        return [self.entry_group(chain.underlying, legs, conf,
                                 f"trend {'up' if up else 'down'} (EMA{p.fast} {fast:.2f} vs EMA{p.slow} {slow:.2f}): "
                                 f"buy {buy.strike:g}, sell {sell.strike:g}",
                                 metadata={"expiry": chain.expiry.isoformat(), "forward": round(fwd, 2), "iv": iv})]

    def planned(self, market: Market) -> list[Strike]:
        """The bought strike at the money, the sold one ``width_steps`` further in the trend's direction."""
        atm = market.chain.atm(market.forward)
        return [atm, market.chain.step(atm, self.direction * self.params.width_steps)]

    def atm_iv(self, chain, inst, fwd, now, prices):
        px = prices.get(inst.instrument_token)
        t = years_to_expiry(chain.expiry, now)
        if not px or t <= 0:
            return None
        try:
            return implied_vol_black76(px, "c" if inst.instrument_type == "CE" else "p", fwd, inst.strike, t, RATE)
        except IVError:
            return None


class BullCallSpread(DebitSpread):
    name = "bull_call_spread"
    description = "Uptrend: buy the ATM call, sell a higher call (defined risk, defined reward)."
    structure = "bull_call_spread"
    direction = 1


class BearPutSpread(DebitSpread):
    name = "bear_put_spread"
    description = "Downtrend: buy the ATM put, sell a lower put (defined risk, defined reward)."
    structure = "bear_put_spread"
    direction = -1
