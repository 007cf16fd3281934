"""Cross-field rules of strategy params, raised from a Params ``__post_init__``. The message names the
field in backticks, so the registry's validation (and the dashboard's form) points at it."""

from __future__ import annotations


def ordered(low_name: str, low: float, high_name: str, high: float, words: str = "must be below") -> None:
    """``low`` must be strictly below ``high`` (a fast EMA shorter than the slow one, an entry window
    that opens before the time exit)."""
    if low >= high:
        raise ValueError(f"`{low_name}` {words} `{high_name}` ({low:g} ≥ {high:g})")
