"""Option positions as a trader studies them: the greeks of the book and the payoff, at expiry and today.

Pure (no I/O): a ``Leg`` is one held or hypothetical instrument with its signed quantity (units) and its
entry price; the caller supplies the spot and each leg's last price. Every option is priced with the
same model the execution worker's greeks caps use (Black-Scholes on spot, ``shared.options``) at the
implied volatility of its own last price, so the desk and risk never disagree about a delta.

* ``book_greeks``: delta (units of the underlying), gamma, theta (₹ a calendar day) and vega (₹ a vol
  point), per leg and summed.
* ``payoff``: P&L in rupees across a band of underlying prices — at the nearest expiry (options that
  expire then at their intrinsic value, later ones still priced with their time left) and today.
* ``breakevens`` and the best and worst P&L inside the band (unbounded when the curve still slopes
  at its edge)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from shared.options.chain import IST, years_to_expiry
from shared.options.iv import IVError, implied_vol_bs
from shared.options.pricing import black_scholes, greeks_bs
from shared.trading.greeks import RATE

DEFAULT_VOL = 0.15  # for a leg whose last price gives no implied volatility (no trades yet)


@dataclass(frozen=True)
class Leg:
    tradingsymbol: str
    kind: str  # CE, PE, FUT or EQ
    quantity: int  # signed units: + bought, - sold
    entry: float  # rupees per unit
    last: float  # rupees per unit
    strike: float = 0.0
    expiry: date | None = None
    strategy: str = ""

    @property
    def is_option(self) -> bool:
        return self.kind in ("CE", "PE") and self.expiry is not None


def _vol(leg: Leg, spot: float, now: float) -> float:
    years = years_to_expiry(leg.expiry, now)
    if years <= 0 or leg.last <= 0:
        return DEFAULT_VOL
    try:
        return implied_vol_bs(leg.last, "c" if leg.kind == "CE" else "p", spot, leg.strike, years, RATE)
    except IVError:
        return DEFAULT_VOL


def value(leg: Leg, spot: float, years: float, vol: float) -> float:
    """One unit of the leg at underlying ``spot`` with ``years`` to its expiry."""
    if not leg.is_option:
        return spot if leg.kind in ("FUT", "EQ") else leg.last
    return black_scholes("c" if leg.kind == "CE" else "p", spot, leg.strike, max(years, 0.0), RATE, vol)


def book_greeks(legs: list[Leg], spot: float, now: float) -> dict:
    rows, total = [], {"delta": 0.0, "gamma": 0.0, "theta": 0.0, "vega": 0.0}
    for leg in legs:
        if leg.is_option:
            vol = _vol(leg, spot, now)
            g = greeks_bs("c" if leg.kind == "CE" else "p", spot, leg.strike, years_to_expiry(leg.expiry, now),
                          RATE, vol)
            unit = {"delta": g.delta, "gamma": g.gamma, "theta": g.theta, "vega": g.vega}
        else:
            vol, unit = 0.0, {"delta": 1.0 if leg.kind in ("FUT", "EQ") else 0.0, "gamma": 0.0, "theta": 0.0,
                              "vega": 0.0}
        line = {k: leg.quantity * v for k, v in unit.items()}
        rows.append({"tradingsymbol": leg.tradingsymbol, "quantity": leg.quantity, "iv": round(vol * 100, 2),
                     "strategy": leg.strategy, **{k: round(v, 4) for k, v in line.items()}})
        for k in total:
            total[k] += line[k]
    return {"legs": rows, "total": {k: round(v, 4) for k, v in total.items()}}


def payoff(legs: list[Leg], spot: float, now: float, span: float = 0.08, points: int = 81) -> dict:
    """``{"prices", "expiry", "today", "expiry_date", "breakevens", "best", "worst", ...}`` (rupees)."""
    expiries = [leg.expiry for leg in legs if leg.is_option]
    first = min(expiries) if expiries else None
    at_first = datetime(first.year, first.month, first.day, 15, 30, tzinfo=IST).timestamp() if first else now
    vols = {i: _vol(leg, spot, now) for i, leg in enumerate(legs) if leg.is_option}
    prices = [spot * (1 - span + 2 * span * i / (points - 1)) for i in range(points)]
    at_expiry, today = [], []
    for s in prices:
        e = t = 0.0
        for i, leg in enumerate(legs):
            vol = vols.get(i, 0.0)
            years_then = years_to_expiry(leg.expiry, at_first) if leg.is_option else 0.0
            e += leg.quantity * (value(leg, s, years_then, vol) - leg.entry)
            t += leg.quantity * (value(leg, s, years_to_expiry(leg.expiry, now) if leg.is_option else 0.0, vol)
                                 - leg.entry)
        at_expiry.append(round(e, 2))
        today.append(round(t, 2))
    return {"prices": [round(p, 2) for p in prices], "expiry": at_expiry, "today": today, "spot": spot,
            "expiry_date": first.isoformat() if first else "", "breakevens": breakevens(prices, at_expiry),
            "best": _edge(at_expiry, max), "worst": _edge(at_expiry, min)}


def breakevens(prices: list[float], pnl: list[float]) -> list[float]:
    """Where the P&L curve crosses zero (linear between the sampled points)."""
    out = []
    for (p0, v0), (p1, v1) in zip(zip(prices, pnl), zip(prices[1:], pnl[1:])):
        if v0 == 0:
            out.append(round(p0, 2))
        elif v0 * v1 < 0:
            out.append(round(p0 + (p1 - p0) * (-v0) / (v1 - v0), 2))
    return out


def _edge(pnl: list[float], pick) -> dict:
    """The best (or worst) P&L in the band, and whether the curve is still moving that way at an edge."""
    value = pick(pnl)
    moving = (pnl[0] == value and pnl[0] != pnl[1]) or (pnl[-1] == value and pnl[-1] != pnl[-2])
    return {"value": value, "unbounded": moving}
