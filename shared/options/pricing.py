"""Black-Scholes (spot) and Black-76 (forward) prices and greeks.

Index options are priced with Black-76 off the implied future from put-call parity, as Indian
option desks do. Greeks: delta, gamma, theta per calendar day, vega per 1 volatility point."""

from __future__ import annotations

import math
from dataclasses import dataclass

SQRT2PI = math.sqrt(2 * math.pi)


def ncdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def npdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / SQRT2PI


def _d1d2(f: float, k: float, t: float, vol: float) -> tuple[float, float]:
    sq = vol * math.sqrt(t)
    d1 = (math.log(f / k) + 0.5 * vol * vol * t) / sq
    return d1, d1 - sq


def black76(flag: str, f: float, k: float, t: float, r: float, vol: float) -> float:
    """Price of a European option on a forward ``f``; ``flag`` is 'c' or 'p'."""
    df = math.exp(-r * t)
    if t <= 0 or vol <= 0:
        return df * max(0.0, f - k if flag == "c" else k - f)
    d1, d2 = _d1d2(f, k, t, vol)
    if flag == "c":
        return df * (f * ncdf(d1) - k * ncdf(d2))
    return df * (k * ncdf(-d2) - f * ncdf(-d1))


def black_scholes(flag: str, s: float, k: float, t: float, r: float, vol: float) -> float:
    """Price of a European option on spot ``s`` (no dividends)."""
    return black76(flag, s * math.exp(r * t), k, t, r, vol)


@dataclass(frozen=True)
class Greeks:
    delta: float
    gamma: float
    theta: float  # per calendar day
    vega: float  # per 1 vol point (0.01)


def greeks_bs(flag: str, s: float, k: float, t: float, r: float, vol: float) -> Greeks:
    if t <= 0 or vol <= 0:
        itm = (s > k) if flag == "c" else (s < k)
        return Greeks((1.0 if itm else 0.0) * (1 if flag == "c" else -1), 0.0, 0.0, 0.0)
    sq = vol * math.sqrt(t)
    d1 = (math.log(s / k) + (r + 0.5 * vol * vol) * t) / sq
    d2 = d1 - sq
    pdf = npdf(d1)
    gamma = pdf / (s * sq)
    vega = s * pdf * math.sqrt(t) / 100
    if flag == "c":
        delta = ncdf(d1)
        theta = -s * pdf * vol / (2 * math.sqrt(t)) - r * k * math.exp(-r * t) * ncdf(d2)
    else:
        delta = ncdf(d1) - 1
        theta = -s * pdf * vol / (2 * math.sqrt(t)) + r * k * math.exp(-r * t) * ncdf(-d2)
    return Greeks(delta, gamma, theta / 365, vega)


def greeks_black76(flag: str, f: float, k: float, t: float, r: float, vol: float) -> Greeks:
    df = math.exp(-r * t)
    if t <= 0 or vol <= 0:
        itm = (f > k) if flag == "c" else (f < k)
        return Greeks((1.0 if itm else 0.0) * (1 if flag == "c" else -1) * df, 0.0, 0.0, 0.0)
    d1, d2 = _d1d2(f, k, t, vol)
    pdf = npdf(d1)
    sq = vol * math.sqrt(t)
    gamma = df * pdf / (f * sq)
    vega = df * f * pdf * math.sqrt(t) / 100
    price = black76(flag, f, k, t, r, vol)
    if flag == "c":
        delta = df * ncdf(d1)
    else:
        delta = -df * ncdf(-d1)
    theta = (-df * f * pdf * vol / (2 * math.sqrt(t)) + r * price) / 365
    return Greeks(delta, gamma, theta, vega)


def implied_forward(call: float, put: float, k: float, t: float, r: float) -> float:
    """Put-call parity on one strike: F = K + (C - P) e^{rT}."""
    return k + (call - put) * math.exp(r * t)
