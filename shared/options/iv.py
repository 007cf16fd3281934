"""Implied volatility by a safeguarded Newton / bisection hybrid: Newton steps on vega where they
stay inside the bracket, bisection otherwise — robust for deep ITM/OTM and on expiry day."""

from __future__ import annotations

import math

from shared.options.pricing import black76

LOW, HIGH = 1e-4, 5.0


class IVError(ValueError):
    pass


def implied_vol_black76(price: float, flag: str, f: float, k: float, t: float, r: float,
                        tol: float = 1e-10, max_iter: int = 200) -> float:
    """The vol at which Black-76 gives ``price``. Raises IVError below intrinsic or above the
    no-arbitrage bound (no vol can produce it)."""
    if t <= 0:
        raise IVError("option has expired")
    df = math.exp(-r * t)
    intrinsic = df * max(0.0, f - k if flag == "c" else k - f)
    upper = df * (f if flag == "c" else k)
    if price < intrinsic - 1e-12 or price >= upper:
        raise IVError(f"price {price} outside the arbitrage bounds ({intrinsic:.6f}, {upper:.6f})")
    if price - intrinsic <= 1e-14:
        return LOW
    lo, hi = LOW, HIGH
    if black76(flag, f, k, t, r, hi) < price:
        raise IVError("price needs a volatility above 500%")
    vol = 0.3
    for _ in range(max_iter):
        value = black76(flag, f, k, t, r, vol) - price
        if abs(value) < tol:
            return vol
        if value > 0:
            hi = vol
        else:
            lo = vol
        d1 = (math.log(f / k) + 0.5 * vol * vol * t) / (vol * math.sqrt(t))
        vega = df * f * math.exp(-0.5 * d1 * d1) / math.sqrt(2 * math.pi) * math.sqrt(t)
        step = vol - value / vega if vega > 1e-12 else None
        vol = step if step is not None and lo < step < hi else 0.5 * (lo + hi)
        if hi - lo < 1e-14:
            return vol
    return vol


def implied_vol_bs(price: float, flag: str, s: float, k: float, t: float, r: float, **kw) -> float:
    """Black-Scholes IV: the same solver on the forward s·e^{rT}."""
    return implied_vol_black76(price, flag, s * math.exp(r * t), k, t, r, **kw)
