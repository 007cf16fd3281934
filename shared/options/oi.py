"""Open-interest tracker fed by ticks: OI by strike, change since the first tick of the day,
put-call ratio and max pain. Each tick is O(1); max pain is computed on demand over the strikes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class _StrikeOI:
    ce: int = 0
    pe: int = 0
    ce_open: int | None = None
    pe_open: int | None = None


class OITracker:
    def __init__(self, strike_of: dict[int, tuple[float, str]]) -> None:
        """``strike_of``: instrument_token -> (strike, 'CE' | 'PE')."""
        self.strike_of = strike_of
        self.strikes: dict[float, _StrikeOI] = {}
        self.total_ce = 0
        self.total_pe = 0

    def update(self, token: int, oi: int) -> None:
        info = self.strike_of.get(token)
        if info is None:
            return
        strike, kind = info
        s = self.strikes.setdefault(strike, _StrikeOI())
        if kind == "CE":
            self.total_ce += oi - s.ce
            s.ce = oi
            if s.ce_open is None:
                s.ce_open = oi
        else:
            self.total_pe += oi - s.pe
            s.pe = oi
            if s.pe_open is None:
                s.pe_open = oi

    @property
    def pcr(self) -> float | None:
        return self.total_pe / self.total_ce if self.total_ce else None

    def change(self, strike: float) -> tuple[int, int]:
        s = self.strikes.get(strike, _StrikeOI())
        return s.ce - (s.ce_open or 0), s.pe - (s.pe_open or 0)

    def max_pain(self) -> float | None:
        """The expiry price at which option writers pay out the least."""
        if not self.strikes:
            return None
        strikes = sorted(self.strikes)

        def payout(price: float) -> float:
            return sum(max(0.0, price - k) * s.ce + max(0.0, k - price) * s.pe for k, s in self.strikes.items())

        return min(strikes, key=payout)
