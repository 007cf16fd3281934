"""Replay mode (``--replay FILE.csv``): underlyings whose candles are in the file follow them instead of
the generator, and the sim's first day is the file's first day.

The CSV has a header with ``timestamp`` (``YYYY-MM-DD HH:MM:SS`` IST, or ISO with ``+0530``), ``open``,
``high``, ``low``, ``close``, ``volume`` and optionally ``symbol`` (an underlying: ``INFY``, ``NIFTY``);
without a ``symbol`` column the file's name is the symbol (``INFY.csv``). Each candle becomes a
one-second path open → high → low → close (low first on a rising candle), its volume spread evenly,
so live ticks, quotes and historical candles of any interval are all drawn from the replayed prices.
Before a day's first candle the price stands at its open; after the last, at its close.
"""

from __future__ import annotations

import csv
from datetime import date, datetime
from pathlib import Path

import numpy as np

from kite_sim.clock import SESSION_SECONDS, session_open
from shared.ist import IST

FIELDS = ("timestamp", "open", "high", "low", "close", "volume")


def parse_timestamp(text: str) -> datetime:
    text = text.strip().replace("T", " ")
    if text.endswith("+0530") or text.endswith("+05:30"):
        text = text[:19]
    return datetime.strptime(text[:19], "%Y-%m-%d %H:%M:%S").replace(tzinfo=IST)


class Replay:
    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        self.candles: dict[str, dict[date, list[tuple[int, float, float, float, float, int]]]] = {}
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in FIELDS if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
            for n, row in enumerate(reader, start=2):
                try:
                    ts = parse_timestamp(row["timestamp"])
                    o, h, lo, c = (float(row[k]) for k in ("open", "high", "low", "close"))
                    v = int(float(row["volume"] or 0))
                except (TypeError, ValueError) as e:
                    raise ValueError(f"{path}:{n}: bad candle ({e})") from None
                sym = (row.get("symbol") or path.stem).strip().upper()
                sec = int((ts - session_open(ts.date())).total_seconds())
                if 0 <= sec < SESSION_SECONDS:
                    self.candles.setdefault(sym, {}).setdefault(ts.date(), []).append((sec, o, h, lo, c, v))
        if not self.candles:
            raise ValueError(f"{path}: no candles inside market hours")
        for days in self.candles.values():
            for rows in days.values():
                rows.sort()

    @property
    def symbols(self) -> set[str]:
        return set(self.candles)

    def first_date(self) -> date:
        return min(min(days) for days in self.candles.values())

    def _day(self, u: str, d: date) -> tuple[date, bool]:
        """The replayed day to use for ``d``, and whether it is ``d`` itself (else: flat at a close/open)."""
        days = sorted(self.candles[u])
        if d in self.candles[u]:
            return d, True
        before = [x for x in days if x < d]
        return (before[-1] if before else days[0]), False

    def close_before(self, u: str, d: date) -> float | None:
        before = [x for x in self.candles[u] if x < d]
        return self.candles[u][max(before)][-1][4] if before else None

    def series(self, u: str, d: date) -> tuple[np.ndarray, np.ndarray, float]:
        """(price per session second, volume per second, previous close) for underlying ``u`` on ``d``."""
        src, same = self._day(u, d)
        rows = self.candles[u][src]
        n = SESSION_SECONDS
        prices = np.empty(n + 1)
        vol = np.zeros(n, dtype=np.int64)
        if not same:  # a day without candles stands at the nearest earlier close (or the first open)
            flat = rows[-1][4] if src < d else rows[0][1]
            prices[:] = flat
            return prices, vol, self.close_before(u, d) or flat
        starts = [r[0] for r in rows]
        step = min((b - a for a, b in zip(starts, starts[1:]) if b > a), default=60)
        prices[: rows[0][0] + 1] = rows[0][1]
        for k, (s0, o, h, lo, c, v) in enumerate(rows):
            s1 = min(n, starts[k + 1] if k + 1 < len(rows) else s0 + step)
            dur = max(1, s1 - s0)
            first, second = (lo, h) if c >= o else (h, lo)
            knots = np.array([0, dur / 3, 2 * dur / 3, dur])
            prices[s0: s1 + 1] = np.interp(np.arange(s1 - s0 + 1), knots, [o, first, second, c])
            vol[s0: s1] += v // dur
            vol[s0] += v - (v // dur) * dur
            if k + 1 == len(rows):
                prices[s1:] = c
        return prices, vol, self.close_before(u, d) or rows[0][1]
