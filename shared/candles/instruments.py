"""Daily snapshots of Kite's instrument master, so a backtest of an old day finds the contracts that
existed that day (expired contracts leave Kite's dump). One Parquet file per day under
``<data_dir>/candles/instruments/YYYY-MM-DD.parquet``; taken by the strategy worker the first time it
loads the instruments on a day, and by ``kta candles refresh``."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from shared.kite.models import Instrument


class InstrumentArchive:
    def __init__(self, root: str | os.PathLike) -> None:
        self.dir = Path(root) / "instruments"

    def days(self) -> list[date]:
        return sorted(date.fromisoformat(p.stem) for p in self.dir.glob("*.parquet")) if self.dir.exists() else []

    def has(self, day: date) -> bool:
        return (self.dir / f"{day.isoformat()}.parquet").exists()

    def save(self, day: date, instruments: list[Instrument]) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        rows = msgspec.to_builtins(instruments)
        for r in rows:
            r["expiry"] = r["expiry"] or ""
        path = self.dir / f"{day.isoformat()}.parquet"
        tmp = path.with_suffix(".tmp")
        pq.write_table(pa.Table.from_pylist(rows), tmp, compression="zstd")
        os.replace(tmp, path)
        return path

    def snapshot_day(self, day: date) -> date | None:
        """The snapshot that describes ``day``: the latest taken on or before it, else the earliest."""
        days = self.days()
        before = [d for d in days if d <= day]
        return before[-1] if before else (days[0] if days else None)

    def load(self, day: date, names: set[str] | None = None, tokens: set[int] | None = None) -> list[Instrument]:
        """The instruments of the snapshot describing ``day``; with ``names`` / ``tokens`` only those whose
        ``name`` or token is given (an options backtest reads a day's chains, not Kite's 100k rows)."""
        snap = self.snapshot_day(day)
        if snap is None:
            return []
        table = pq.read_table(self.dir / f"{snap.isoformat()}.parquet")
        if names is not None or tokens is not None:
            keep = pc.or_(pc.is_in(table["name"], pa.array(sorted(names or ()), pa.string())),
                          pc.is_in(table["instrument_token"], pa.array(sorted(tokens or ()), pa.int64())))
            table = table.filter(keep)
        rows = table.to_pylist()
        for r in rows:
            r["expiry"] = r["expiry"] or None
        return msgspec.convert(rows, list[Instrument])
