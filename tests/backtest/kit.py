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


# ---- an index and its weekly options (options backtests) -------------------------------------------------------

NIFTY_TOKEN = 256265
NIFTY_INDEX = Instrument(instrument_token=NIFTY_TOKEN, exchange_token=NIFTY_TOKEN >> 8, tradingsymbol="NIFTY 50",
                         name="NIFTY 50", last_price=0, expiry=None, strike=0, tick_size=0, lot_size=0,
                         instrument_type="EQ", segment="INDICES", exchange="NSE")
OPTION_DAYS = [date(2026, 3, 4), date(2026, 3, 5), date(2026, 3, 6)]  # Wed-Fri: the weekly expires Tue 10th
OPTION_EXPIRY = date(2026, 3, 10)


def option_chain(expiry: date = OPTION_EXPIRY, strikes: range = range(25400, 26650, 50)) -> list[Instrument]:
    out = []
    for n, strike in enumerate(strikes):
        for kind in ("CE", "PE"):
            token = (41000 + 2 * n + (kind == "PE")) * 256 + 2
            out.append(Instrument(instrument_token=token, exchange_token=token >> 8, name="NIFTY", last_price=0,
                                  tradingsymbol=f"NIFTY{expiry:%y}{expiry.month}{expiry:%d}{strike}{kind}",
                                  expiry=expiry, strike=float(strike), tick_size=0.05, lot_size=65,
                                  instrument_type=kind, segment="NFO-OPT", exchange="NFO"))
    return out


def seed_options(data_dir: Path, days: list[date] = OPTION_DAYS, seed: int = 11, vol: float = 0.14) -> list[date]:
    """Minute candles of NIFTY 50 (a seeded walk from 26,000) and of every contract of its weekly chain, each
    priced by Black-Scholes at ``vol`` against the minute's spot (on the ₹0.05 grid), with each day's snapshot:
    what an options backtest reads, written straight to the store (no broker)."""
    from shared.options.chain import RATE, years_to_expiry
    from shared.options.pricing import black_scholes

    root = Path(data_dir) / "candles"
    store, archive = CandleStore(root), InstrumentArchive(root)
    chain = option_chain()
    rng = np.random.default_rng(seed)
    spot = 26000.0
    rows: dict[int, list[tuple]] = {i.instrument_token: [] for i in [NIFTY_INDEX, *chain]}
    last: dict[int, float] = {}
    for d in days:
        archive.save(d, [NIFTY_INDEX, *chain, INFY])  # INFY: a listed stock without options
        t0 = int(datetime(d.year, d.month, d.day, 9, 15, tzinfo=ist.IST).timestamp())
        for k in range(375):
            ts = t0 + 60 * k
            o = spot
            spot = round(spot * float(np.exp(rng.normal(0, 0.0002))), 2)
            rows[NIFTY_TOKEN].append((ts, o, max(o, spot) + 1.0, min(o, spot) - 1.0, spot, 0, 0))
            t = years_to_expiry(OPTION_EXPIRY, ts + 60)
            for inst in chain:
                px = black_scholes("c" if inst.instrument_type == "CE" else "p", spot, inst.strike, t, RATE, vol)
                px = max(0.05, round(px * 20) / 20)
                op = last.get(inst.instrument_token, px)
                rows[inst.instrument_token].append((ts, op, max(op, px), min(op, px), px, 100, 0))
                last[inst.instrument_token] = px
    for token, r in rows.items():
        store.write(token, "minute", Candles.from_rows(r))
    return days
