"""CSV into the candle store, in kite_sim's replay format or the documented OHLCV format — they are one:

    symbol,timestamp,open,high,low,close,volume[,oi]
    INFY,2026-03-02 09:15:00,1500.0,1500.9,1499.8,1500.5,1000

``timestamp`` is the candle's open in IST (``YYYY-MM-DD HH:MM:SS``, ``YYYY-MM-DD`` for daily candles, or
ISO 8601 with ``+0530`` / ``+05:30``); ``symbol`` is a tradingsymbol (``INFY``, ``NSE:INFY``); without a
``symbol`` column the file's name is the symbol (``INFY.csv``). A bad row is refused with its line number.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from shared.candles.store import CandleError, Candles, CandleStore
from shared.ist import IST

REQUIRED = ("timestamp", "open", "high", "low", "close", "volume")


def parse_time(text: str) -> int:
    text = text.strip().replace("T", " ")
    for suffix in ("+0530", "+05:30"):
        text = text.removesuffix(suffix)
    fmt = "%Y-%m-%d" if len(text) == 10 else "%Y-%m-%d %H:%M:%S"
    return int(datetime.strptime(text[:19], fmt).replace(tzinfo=IST).timestamp())


def read_csv(path: str | Path) -> dict[str, list[tuple]]:
    """Rows by symbol: (ts, open, high, low, close, volume, oi)."""
    path = Path(path)
    out: dict[str, list[tuple]] = {}
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise CandleError("file", f"{path.name}: missing column(s) {', '.join(missing)}")
        for n, row in enumerate(reader, start=2):
            try:
                ts = parse_time(row["timestamp"])
                o, h, lo, c = (float(row[k]) for k in ("open", "high", "low", "close"))
                v, oi = int(float(row["volume"] or 0)), int(float(row.get("oi") or 0))
            except (TypeError, ValueError) as e:
                raise CandleError("file", f"{path.name}:{n}: bad candle ({e})") from None
            if not (lo <= min(o, c) and h >= max(o, c)):
                raise CandleError("file", f"{path.name}:{n}: high/low do not contain open/close")
            sym = (row.get("symbol") or path.stem).strip().upper()
            out.setdefault(sym, []).append((ts, o, h, lo, c, v, oi))
    if not out:
        raise CandleError("file", f"{path.name}: no candles")
    return out


def import_csv(store: CandleStore, path: str | Path, interval: str, token_of: Callable[[str], int]) -> dict[str, int]:
    """Write every symbol's candles; ``token_of`` maps a symbol to its instrument token (raising
    CandleError naming ``symbol`` for one it does not know). Returns candles written per symbol."""
    rows = read_csv(path)
    return {sym: store.write(token_of(sym), interval, Candles.from_rows(sorted(r))) for sym, r in rows.items()}
