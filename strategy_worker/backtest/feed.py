"""Bars for a backtest, streamed from the candle store a month at a time and merged across instruments
in time order (same time: in the order the instruments were given), so memory stays flat however long
the range."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import numpy as np

from shared.candles.store import COLUMNS, Candles, CandleStore, months_between
from shared.ist import IST

Row = tuple[int, int, float, float, float, float, int, int]  # token, ts, open, high, low, close, volume, oi


def chunks(store: CandleStore, tokens: list[int], interval: str, start: int, end: int
           ) -> Iterator[tuple[list, ...]]:
    """Per month: parallel lists (tokens, ts, open, high, low, close, volume, oi), time-ordered."""
    for month in months_between(start, end):
        m_start, m_end = month_span(month, start, end)
        parts = []
        for t in tokens:
            for c in store.iter_months(t, interval, m_start, m_end):
                parts.append((t, c))
        if parts:
            yield merge(parts)


def merge(parts: list[tuple[int, Candles]]) -> tuple[list, ...]:
    """Series of several instruments as parallel lists (tokens, ts, open, high, low, close, volume, oi) in
    time order; at the same time in the order given."""
    if len(parts) == 1:
        t, c = parts[0]
        return ([t] * len(c), *(getattr(c, col).tolist() for col in COLUMNS))
    tok = np.concatenate([np.full(len(c), t, dtype=np.int64) for t, c in parts])
    cols = {col: np.concatenate([getattr(c, col) for _, c in parts]) for col in COLUMNS}
    order = np.argsort(cols["ts"], kind="stable")
    return (tok[order].tolist(), *(cols[col][order].tolist() for col in COLUMNS))


def month_span(month: str, start: int, end: int) -> tuple[int, int]:
    y, m = int(month[:4]), int(month[5:])
    a = int(datetime(y, m, 1, tzinfo=IST).timestamp())
    b = int(datetime(y + (m == 12), m % 12 + 1, 1, tzinfo=IST).timestamp()) - 1
    return max(a, start), min(b, end)
