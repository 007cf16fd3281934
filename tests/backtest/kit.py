"""Seeded candles for backtest tests: minute bars of INFY and TCS (a random walk with trending stretches,
on the tick grid, inside the session), written to a candle store with an instrument snapshot, or to a
CSV in kite_sim's replay format."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np

from shared import ist
from shared.candles.instruments import InstrumentArchive
from shared.candles.store import Candles, CandleStore
from shared.kite.models import Instrument


def equity(token: int, symbol: str, name: str) -> Instrument:
    return Instrument(instrument_token=token, exchange_token=token >> 8, tradingsymbol=symbol, name=name,
                      last_price=0, expiry=None, strike=0, tick_size=0.05, lot_size=1, instrument_type="EQ",
                      segment="NSE", exchange="NSE")


INFY, TCS = equity(408065, "INFY", "INFOSYS"), equity(2953217, "TCS", "TATA CONSULTANCY SERV")
INSTRUMENTS = [INFY, TCS]
BASE = {INFY.instrument_token: 1500.0, TCS.instrument_token: 3150.0}
START = date(2026, 3, 2)  # a Monday


def trading_days(first: date, count: int) -> list[date]:
    out, d = [], first
    while len(out) < count:
        if d.weekday() < 5:
            out.append(d)
        d += timedelta(days=1)
    return out


def candles(token: int, days: list[date], seed: int = 7, per_day: int = 375) -> Candles:
    """Minute candles from 09:15 of each day: a walk with a drift that changes every 40 minutes."""
    rng = np.random.default_rng(seed + token % 1000)
    price = BASE[token]
    parts = []
    for d in days:
        t0 = int(datetime(d.year, d.month, d.day, 9, 15, tzinfo=ist.IST).timestamp())
        drift = np.repeat(rng.normal(0, 0.0004, per_day // 40 + 1), 40)[:per_day]
        closes = price * np.exp(np.cumsum(rng.normal(0, 0.0007, per_day) + drift))
        opens = np.concatenate(([price * np.exp(rng.normal(0, 0.002))], closes[:-1]))
        wick = np.abs(rng.normal(0, 0.0004, (2, per_day)))
        grid = lambda a: np.round(a * 20) / 20  # noqa: E731 - ₹0.05 ticks
        o, c = grid(opens), grid(closes)
        h = np.maximum(grid(np.maximum(opens, closes) * (1 + wick[0])), np.maximum(o, c))
        lo = np.minimum(grid(np.minimum(opens, closes) * (1 - wick[1])), np.minimum(o, c))
        parts.append(Candles(t0 + 60 * np.arange(per_day, dtype=np.int64), o, h, lo, c,
                             rng.integers(500, 5000, per_day), np.zeros(per_day, dtype=np.int64)))
        price = float(closes[-1])
    return Candles(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                     ("ts", "open", "high", "low", "close", "volume", "oi")))


def seed_store(data_dir: Path, days: int = 5, seed: int = 7, first: date = START,
               instruments: list[Instrument] = INSTRUMENTS) -> list[date]:
    """Minute candles of every instrument for ``days`` trading days from ``first``, and the snapshot."""
    root = Path(data_dir) / "candles"
    store = CandleStore(root)
    ds = trading_days(first, days)
    for inst in instruments:
        store.write(inst.instrument_token, "minute", candles(inst.instrument_token, ds, seed))
    InstrumentArchive(root).save(first - timedelta(days=3), list(instruments))
    return ds


def write_replay_csv(path: Path, token_symbols: dict[int, str], days: list[date], seed: int = 7) -> Path:
    """The same candles in kite_sim's ``--replay`` format."""
    lines = ["symbol,timestamp,open,high,low,close,volume"]
    for token, symbol in token_symbols.items():
        c = candles(token, days, seed)
        for ts, o, h, lo, cl, v in zip(c.ts.tolist(), c.open.tolist(), c.high.tolist(), c.low.tolist(),
                                       c.close.tolist(), c.volume.tolist()):
            lines.append(f"{symbol},{ist.stamp(ts)},{o:.2f},{h:.2f},{lo:.2f},{cl:.2f},{v}")
    path.write_text("\n".join(lines) + "\n")
    return path
