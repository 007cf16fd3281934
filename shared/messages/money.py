"""Money helpers: integer paise inside kta, exact conversions at the Kite edge."""

from __future__ import annotations

import time
from decimal import ROUND_HALF_EVEN, Decimal


def to_paise(rupees: float | str | Decimal) -> int:
    """Rupees (float, str or Decimal) to integer paise, rounding half-even at the paisa."""
    return int((Decimal(str(rupees)) * 100).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def to_rupees(paise: int) -> Decimal:
    """Integer paise to an exact Decimal of rupees (for display and for Kite's form fields)."""
    return (Decimal(paise) / 100).quantize(Decimal("0.01"))


def group_indian(digits: str) -> str:
    """``1234567`` → ``12,34,567``: the last three digits, then pairs."""
    if len(digits) <= 3:
        return digits
    head, tail = digits[:-3], digits[-3:]
    pairs = []
    while len(head) > 2:
        pairs.insert(0, head[-2:])
        head = head[:-2]
    return ",".join([head, *pairs, tail])


def format_inr(paise: int, symbol: str = "₹", sign_joiner: str = "") -> str:
    """Integer paise as a trader reads it: ``-₹52,260.00`` (Indian digit grouping, exact)."""
    sign = "-" + sign_joiner if paise < 0 else ""
    whole, frac = divmod(abs(paise), 100)
    return f"{sign}{symbol}{group_indian(str(whole))}.{frac:02d}"


def now_ns() -> int:
    return time.time_ns()
