"""The local candle store: Kite's historical candles cached as Parquet, one file per (interval, instrument,
IST month), so a backtest streams a range month by month (memory flat in its length) and an incremental
refresh rewrites only the months it touched.

Layout under ``<data_dir>/candles``::

    <interval>/<instrument_token>/2025-01.parquet   ts (epoch s, candle open), open, high, low, close,
                                                     volume, oi — sorted by ts, one row per candle
    <interval>/<instrument_token>/coverage.json      {"covered": [[from_ts, to_ts], ...]} merged spans
                                                     already fetched (a holiday fetched empty is covered)

Prices are Kite's rupee floats (``Bar`` carries floats); money is turned into paise where orders are made.
Writers of one series hold a flock (``shared/dblock.py``), so a worker refreshing and a CLI import never
interleave; readers see whole files (written to a temporary name, then renamed).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from shared import dblock
from shared.ist import IST
from shared.messages import INTERVAL_SECONDS

COLUMNS = ("ts", "open", "high", "low", "close", "volume", "oi")
SCHEMA = pa.schema([("ts", pa.int64()), ("open", pa.float64()), ("high", pa.float64()), ("low", pa.float64()),
                    ("close", pa.float64()), ("volume", pa.int64()), ("oi", pa.int64())])


class CandleError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def check_interval(interval: str) -> str:
    if interval not in INTERVAL_SECONDS:
        raise CandleError("interval", f"Kite has no {interval!r} candles; one of {', '.join(INTERVAL_SECONDS)}")
    return interval


def month_of(ts: int) -> str:
    return datetime.fromtimestamp(ts, IST).strftime("%Y-%m")


def months_between(start: int, end: int) -> list[str]:
    """IST months ``YYYY-MM`` from the one holding ``start`` to the one holding ``end``."""
    a, b = datetime.fromtimestamp(start, IST), datetime.fromtimestamp(end, IST)
    out, y, m = [], a.year, a.month
    while (y, m) <= (b.year, b.month):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def merge_spans(spans: list[list[int]]) -> list[list[int]]:
    out: list[list[int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return out


def missing_spans(covered: list[list[int]], start: int, end: int) -> list[tuple[int, int]]:
    """The parts of [start, end] not yet covered."""
    out, cur = [], start
    for a, b in covered:
        if b < cur:
            continue
        if a > end:
            break
        if a > cur:
            out.append((cur, a - 1))
        cur = max(cur, b + 1)
    if cur <= end:
        out.append((cur, end))
    return out


@dataclass
class Candles:
    """Columns of one series over a span (numpy arrays, sorted by ts)."""

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    oi: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)

    @classmethod
    def from_rows(cls, rows: list[tuple]) -> Candles:
        """From (ts, open, high, low, close, volume[, oi]) tuples."""
        cols = list(zip(*rows)) if rows else [()] * 7
        if len(cols) == 6:
            cols.append((0,) * len(rows))
        return cls(np.asarray(cols[0], dtype=np.int64), *(np.asarray(c, dtype=np.float64) for c in cols[1:5]),
                   np.asarray(cols[5], dtype=np.int64), np.asarray(cols[6], dtype=np.int64))

    def slice(self, a: int, b: int) -> Candles:
        return Candles(*(getattr(self, c)[a:b] for c in COLUMNS))

    def table(self) -> pa.Table:
        return pa.table([getattr(self, c) for c in COLUMNS], schema=SCHEMA)


class CandleStore:
    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def series_dir(self, token: int, interval: str) -> Path:
        return self.root / check_interval(interval) / str(int(token))

    # ---- coverage -----------------------------------------------------------------------------

    def covered(self, token: int, interval: str) -> list[list[int]]:
        path = self.series_dir(token, interval) / "coverage.json"
        try:
            return json.loads(path.read_text())["covered"]
        except FileNotFoundError:
            return []

    def missing(self, token: int, interval: str, start: int, end: int) -> list[tuple[int, int]]:
        return missing_spans(self.covered(token, interval), start, end)

    # ---- writing ------------------------------------------------------------------------------

    def write(self, token: int, interval: str, candles: Candles, span: tuple[int, int] | None = None) -> int:
        """Merge ``candles`` into the series (a candle at an existing ts replaces it) and mark ``span``
        (default: the candles' own) as covered. Returns the number of candles written."""
        d = self.series_dir(token, interval)
        d.mkdir(parents=True, exist_ok=True)
        with dblock.opening(d / "series"):
            if len(candles):
                table = candles.table().take(pa.array(np.argsort(candles.ts, kind="stable")))
                ts = table.column("ts").to_numpy()
                months = months_between(int(ts[0]), int(ts[-1]))
                starts = [int(datetime.strptime(m, "%Y-%m").replace(tzinfo=IST).timestamp()) for m in months]
                cuts = np.searchsorted(ts, starts[1:] + [int(ts[-1]) + 1], side="left")
                a = 0
                for month, b in zip(months, cuts):
                    if b > a:
                        self._merge_month(d / f"{month}.parquet", table.slice(a, b - a))
                    a = b
            if span is None and len(candles):
                span = (int(candles.ts.min()), int(candles.ts.max()))
            if span is not None:
                spans = merge_spans(self.covered(token, interval) + [[int(span[0]), int(span[1])]])
                _atomic_write(d / "coverage.json", json.dumps({"covered": spans}).encode())
        return len(candles)

    @staticmethod
    def _merge_month(path: Path, new: pa.Table) -> None:
        if path.exists():
            old = pq.read_table(path)
            keep = ~np.isin(old.column("ts").to_numpy(), new.column("ts").to_numpy())
            merged = pa.concat_tables([old.filter(pa.array(keep)), new])
            merged = merged.take(pa.array(np.argsort(merged.column("ts").to_numpy(), kind="stable")))
        else:
            _, first = np.unique(new.column("ts").to_numpy()[::-1], return_index=True)  # last of duplicates
            merged = new.take(pa.array(len(new) - 1 - first))
        tmp = path.with_suffix(".tmp")
        pq.write_table(merged, tmp, compression="zstd")
        os.replace(tmp, path)

    # ---- reading ------------------------------------------------------------------------------

    def months(self, token: int, interval: str) -> list[str]:
        d = self.series_dir(token, interval)
        return sorted(p.stem for p in d.glob("*.parquet")) if d.exists() else []

    def _month(self, token: int, interval: str, month: str) -> Candles | None:
        path = self.series_dir(token, interval) / f"{month}.parquet"
        if not path.exists():
            return None
        t = pq.ParquetFile(path).read(use_threads=False)  # a month is small: no dataset, no thread pool
        return Candles(*(t.column(c).to_numpy() for c in COLUMNS))

    def iter_months(self, token: int, interval: str, start: int, end: int) -> Iterator[Candles]:
        """The series over [start, end], one month at a time (what a backtest streams)."""
        first, last = month_of(max(0, start)), month_of(min(end, 2**35))
        for month in (m for m in self.months(token, interval) if first <= m <= last):
            c = self._month(token, interval, month)
            if c is None:
                continue
            a, b = np.searchsorted(c.ts, [start, end + 1])
            if b > a:
                yield c.slice(int(a), int(b))

    def has_data(self, token: int, interval: str, start: int, end: int) -> bool:
        return next(self.iter_months(token, interval, start, end), None) is not None

    def read(self, token: int, interval: str, start: int, end: int) -> Candles:
        parts = list(self.iter_months(token, interval, start, end))
        if not parts:
            return Candles.from_rows([])
        return Candles(*(np.concatenate([getattr(p, c) for p in parts]) for c in COLUMNS))

    def last(self, token: int, interval: str, before: int, count: int) -> Candles:
        """The last ``count`` candles strictly before ``before`` (a strategy's warm-up)."""
        out: list[Candles] = []
        have = 0
        for month in reversed([m for m in self.months(token, interval) if m <= month_of(before)]):
            c = self._month(token, interval, month)
            c = c.slice(0, int(np.searchsorted(c.ts, before)))
            if len(c):
                out.append(c)
                have += len(c)
            if have >= count:
                break
        if not out:
            return Candles.from_rows([])
        whole = Candles(*(np.concatenate([getattr(p, c) for p in reversed(out)]) for c in COLUMNS))
        return whole.slice(max(0, len(whole) - count), len(whole))


def day_bounds(first: date, last: date) -> tuple[int, int]:
    """Epoch seconds from ``first`` 00:00 IST to ``last`` 23:59:59 IST."""
    a = datetime.combine(first, datetime.min.time(), IST)
    b = datetime.combine(last, datetime.max.time().replace(microsecond=0), IST)
    return int(a.timestamp()), int(b.timestamp())


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
