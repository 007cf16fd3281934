"""Option chains from the instrument list: by underlying and expiry, strikes, ATM, strikes by
distance or by delta, and the implied future from put-call parity."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime

from shared.ist import IST
from shared.kite.models import Instrument
from shared.options.iv import IVError, implied_vol_black76
from shared.options.pricing import greeks_black76, implied_forward

RATE = 0.065
YEAR = 365 * 24 * 3600


def years_to_expiry(expiry: date, now_epoch: float) -> float:
    close = datetime(expiry.year, expiry.month, expiry.day, 15, 30, tzinfo=IST).timestamp()
    return max(0.0, close - now_epoch) / YEAR


@dataclass
class Strike:
    strike: float
    ce: Instrument | None = None
    pe: Instrument | None = None


@dataclass
class OptionChain:
    underlying: str
    expiry: date
    lot_size: int
    strikes: list[Strike] = field(default_factory=list)

    def atm(self, spot: float) -> Strike:
        return min(self.strikes, key=lambda s: abs(s.strike - spot))

    def by_offset(self, spot: float, steps: int) -> Strike:
        """The strike ``steps`` away from ATM (positive = higher strikes), clamped to the chain."""
        return self.step(self.atm(spot), steps)

    def step(self, strike: Strike, steps: int) -> Strike:
        """The strike ``steps`` strikes from ``strike`` (positive = higher), clamped to the chain."""
        i = self.strikes.index(strike)
        return self.strikes[max(0, min(len(self.strikes) - 1, i + steps))]

    def implied_future(self, spot: float, prices: dict[int, float], now: float) -> float:
        """Put-call parity at the ATM strike when both legs have prices; cost of carry otherwise."""
        t = years_to_expiry(self.expiry, now)
        s = self.atm(spot)
        if s.ce and s.pe and s.ce.instrument_token in prices and s.pe.instrument_token in prices:
            return implied_forward(prices[s.ce.instrument_token], prices[s.pe.instrument_token], s.strike, t, RATE)
        return spot * math.exp(RATE * t)

    def by_delta(self, kind: str, target: float, forward: float, now: float, prices: dict[int, float],
                 default_vol: float = 0.15) -> Strike:
        """The strike whose option delta (Black-76, IV from its price when known) is nearest ``target``."""
        t = max(years_to_expiry(self.expiry, now), 1e-6)
        best, best_err = self.strikes[0], float("inf")
        for s in self.strikes:
            inst = s.ce if kind == "CE" else s.pe
            if inst is None:
                continue
            vol = default_vol
            px = prices.get(inst.instrument_token)
            if px:
                try:
                    vol = implied_vol_black76(px, "c" if kind == "CE" else "p", forward, s.strike, t, RATE)
                except IVError:
                    pass
            d = greeks_black76("c" if kind == "CE" else "p", forward, s.strike, t, RATE, vol).delta
            if abs(d - target) < best_err:
                best, best_err = s, abs(d - target)
        return best


def build_chains(instruments: list[Instrument], underlying: str) -> dict[date, OptionChain]:
    chains: dict[date, OptionChain] = {}
    for i in instruments:
        if i.name != underlying or i.instrument_type not in ("CE", "PE") or i.expiry is None:
            continue
        chain = chains.setdefault(i.expiry, OptionChain(underlying, i.expiry, i.lot_size))
        strikes = {s.strike: s for s in chain.strikes}
        s = strikes.get(i.strike)
        if s is None:
            s = Strike(i.strike)
            chain.strikes.append(s)
        if i.instrument_type == "CE":
            s.ce = i
        else:
            s.pe = i
    for chain in chains.values():
        chain.strikes.sort(key=lambda s: s.strike)
    return chains


def nearest_chain(instruments: list[Instrument], underlying: str, today: date, min_days: int = 0) -> OptionChain | None:
    chains = build_chains(instruments, underlying)
    live = [e for e in chains if (e - today).days >= min_days]
    return chains[min(live)] if live else None
