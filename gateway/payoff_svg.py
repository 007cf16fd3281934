"""A payoff curve as an SVG the page draws without scripts (a strict CSP allows it): the two P&L curves
(at expiry, today) over the underlying's price, the zero line, the spot and the breakevens, with a few
axis labels. Coordinates only; colours and fonts come from the stylesheet by class."""

from __future__ import annotations

WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 12, 28


def _scale(lo: float, hi: float, a: float, b: float):
    span = (hi - lo) or 1.0
    return lambda v: a + (v - lo) * (b - a) / span


def _path(xs: list[float], ys: list[float]) -> str:
    return "M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys))


def payoff_svg(curve: dict) -> dict:
    """Everything the template needs to draw ``gateway.option_book.payoff``'s curve."""
    prices, expiry, today = curve["prices"], curve["expiry"], curve["today"]
    lo_pnl, hi_pnl = min(expiry + today + [0.0]), max(expiry + today + [0.0])
    pad = (hi_pnl - lo_pnl) * 0.08 or 1.0
    x = _scale(prices[0], prices[-1], LEFT, WIDTH - RIGHT)
    y = _scale(lo_pnl - pad, hi_pnl + pad, HEIGHT - BOTTOM, TOP)
    xs = [x(p) for p in prices]
    ticks_x = [prices[i] for i in (0, len(prices) // 4, len(prices) // 2, 3 * len(prices) // 4, len(prices) - 1)]
    return {
        "width": WIDTH, "height": HEIGHT, "left": LEFT, "right": WIDTH - RIGHT, "top": TOP,
        "bottom": HEIGHT - BOTTOM,
        "expiry": _path(xs, [y(v) for v in expiry]), "today": _path(xs, [y(v) for v in today]),
        "zero": round(y(0.0), 1), "spot": round(x(curve["spot"]), 1),
        "breakevens": [round(x(b), 1) for b in curve["breakevens"]],
        "ticks_x": [{"x": round(x(p), 1), "label": f"{p:,.0f}"} for p in ticks_x],
        "ticks_y": [{"y": round(y(v), 1), "label": f"{v:,.0f}"} for v in sorted({lo_pnl, 0.0, hi_pnl})],
    }
