"""A stock-scanner query string (``/api/scanner?min_price=100&rsi_below=30``, or the dashboard's
scanner form) as an ``m.Scan`` command, validated by the command's own definition so the limits
live in one place; a bad value or an unknown condition is a ``TradingError`` naming the field.

Blank values are left out (an empty form field means "no condition"); ``symbols`` may repeat or be
comma-separated and is upper-cased (``nse:infy`` → ``NSE:INFY``)."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from shared import messages as m
from shared import validation
from gateway.trading import TradingError

FIELDS = frozenset(m.Scan.__struct_fields__)
_WORDS = {"float": "a number", "int": "a whole number"}


def _message(e: msgspec.ValidationError) -> str:
    text = validation.reason(e)
    for kind, words in _WORDS.items():
        if text.startswith((f"Expected `{kind} | null`, got `str`", f"Expected `{kind}`, got `str`")):
            return f"must be {words}"
    return text[0].lower() + text[1:] if text else "invalid"


def scan_command(items: Iterable[tuple[str, str]]) -> m.Scan:
    """``(key, value)`` pairs of a query string → ``m.Scan``; TradingError(400, field) when refused."""
    data: dict[str, object] = {}
    for key, raw in items:
        if key not in FIELDS:
            raise TradingError(400, f"{key}: not a scanner condition (known: {', '.join(sorted(FIELDS))})", key)
        value = raw.strip()
        if key == "symbols":
            symbols = data.setdefault("symbols", [])
            symbols.extend(s.strip().upper() for s in value.split(",") if s.strip())  # type: ignore[union-attr]
        elif not value:
            continue
        elif key in data:
            raise TradingError(400, f"{key}: given twice", key)
        else:
            data[key] = value
    try:
        return msgspec.convert(data, m.Scan, strict=False)
    except msgspec.ValidationError as e:
        field = validation.path(e) or "query"
        raise TradingError(400, f"{field}: {_message(e)}", field, "bad_params") from None
