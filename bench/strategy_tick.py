"""Cost per tick per strategy: kta's incremental engine vs the original design's pandas recompute.

kta: the real hot path, ``StrategyEngine.on_tick`` (bar builder updated in place, O(1) indicator
updates on each completed bar, bars published to a real nats-server), one strategy at a time on
NIFTY, warmed with 500 five-minute bars, then fed seeded ticks at one per exchange second (median
of three runs).

Baseline (the original design, original-design.md §3 "Tick Reception → Signal Generation"): every
tick is appended to a DataFrame of 5-minute candles (the last row updated, or a new row appended,
keeping the last 500 candles), and the strategy recomputes its indicators over the whole frame
with ``.ewm()`` / ``.rolling()`` and reads ``.iloc[-1]``. Same seeded bars, same ticks.

Prints µs per tick for both (and, for kta, the mean cost of the ticks that close a bar and so
run ``on_bar``, which the per-tick mean amortises over 300 ticks), the ratio (target ≥ 100×) and kta's absolute figure (target < 20 µs
per tick per strategy). Usage: python bench/strategy_tick.py [kta_ticks] [baseline_ticks]
"""

from __future__ import annotations

import asyncio
import math
import sys
import tempfile
import time
import warnings
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kite_sim.instruments import Universe  # noqa: E402
from shared import messages as m  # noqa: E402
from shared import natsd  # noqa: E402
from shared.bus import Bus  # noqa: E402
from shared.config import load  # noqa: E402
from shared.kite.models import Instrument  # noqa: E402
from strategy_worker.bars import bar_start  # noqa: E402
from strategy_worker.engine import StrategyEngine  # noqa: E402
from strategy_worker.strategies import registry  # noqa: E402

IST = timezone(timedelta(hours=5, minutes=30))
NIFTY = 256265
USER = "BENCH1"
DAY = date(2026, 11, 25)
SEED_BARS = 500
TARGET_RATIO, TARGET_US = 100.0, 20.0
STRATEGIES = ["ema_crossover", "rsi", "mean_reversion", "vwap_breakout", "bull_call_spread", "bear_put_spread",
              "iron_condor", "straddle", "strangle"]


# ---- seeded data ------------------------------------------------------------------------------

def seed_bars(rng: np.random.Generator) -> list[m.Bar]:
    """500 five-minute bars over the sessions before DAY (75 bars a session)."""
    bars, price, day = [], 26_000.0, DAY
    starts: list[int] = []
    while len(starts) < SEED_BARS:
        day -= timedelta(days=1)
        if day.weekday() >= 5:
            continue
        open_ = int(datetime(day.year, day.month, day.day, 9, 15, tzinfo=IST).timestamp())
        starts = [open_ + 300 * i for i in range(75)] + starts
    for start in starts[-SEED_BARS:]:
        closes = price * np.exp(np.cumsum(rng.normal(0, 0.00006, 300)))
        bars.append(m.Bar(NIFTY, "5minute", start, price, float(closes.max()), float(closes.min()),
                          float(closes[-1]), int(rng.integers(50_000, 150_000))))
        price = float(closes[-1])
    k = 26_000.0 / price  # end at the middle of kite_sim's NIFTY chain, so option strategies can trade
    return [m.Bar(b.instrument_token, b.interval, b.start, b.open * k, b.high * k, b.low * k, b.close * k, b.volume)
            for b in bars]


def ticks(rng: np.random.Generator, n: int, last_close: float) -> list[m.Tick]:
    start = int(datetime(DAY.year, DAY.month, DAY.day, 9, 15, tzinfo=IST).timestamp())
    prices = last_close * np.exp(np.cumsum(rng.normal(0, 0.00006, n)))
    volume = np.cumsum(rng.integers(100, 600, n))
    return [m.Tick(NIFTY, "full", False, round(float(p), 2), volume_traded=int(v), exchange_timestamp=start + i,
                   received_at=(start + i) * 10**9) for i, (p, v) in enumerate(zip(prices, volume))]


def instruments() -> list[Instrument]:
    return [Instrument(instrument_token=i.instrument_token, exchange_token=i.exchange_token,
                       tradingsymbol=i.tradingsymbol, name=i.name, last_price=0.0, expiry=i.expiry, strike=i.strike,
                       tick_size=i.tick_size, lot_size=i.lot_size, instrument_type=i.instrument_type,
                       segment=i.segment, exchange=i.exchange) for i in Universe(DAY).by_token.values()]


# ---- kta --------------------------------------------------------------------------------------

def warm_engine(bus: Bus, settings, name: str, seed: list[m.Bar], insts: list[Instrument]) -> StrategyEngine:
    engine = StrategyEngine(bus, settings)
    engine.ctx.set_instruments(insts)
    engine.users[USER].live = True
    engine.series_for(NIFTY).seed(seed)
    engine.series_ready(NIFTY)
    engine.put(engine.make(USER, f"bench-{name}", name, registry.validate_params(name, {}), [NIFTY]))
    return engine


async def kta_per_tick(bus: Bus, data_dir: str, name: str, seed: list[m.Bar], feed: list[m.Tick],
                       insts: list[Instrument], repeats: int = 3) -> tuple[float, int, float]:
    """Median over ``repeats`` fresh engines of the mean µs per tick; signals published; and the
    mean µs of the ticks that close a bar (timed one by one on a last pass)."""
    settings = load(environ={}, nats_url=bus.nc.connected_url.geturl(), data_dir=data_dir)
    clock, runs, signals = time.perf_counter, [], 0
    for _ in range(repeats):
        engine = warm_engine(bus, settings, name, seed, insts)
        on_tick = engine.on_tick
        t0 = clock()
        for tick in feed:
            await on_tick(tick)
        runs.append((clock() - t0) / len(feed) * 1e6)
        signals = engine.signals_published
    closing = {i for i in range(1, len(feed)) if bar_start(feed[i].exchange_timestamp, 300)
               != bar_start(feed[i - 1].exchange_timestamp, 300)}
    engine, bar_ticks = warm_engine(bus, settings, name, seed, insts), []
    for i, tick in enumerate(feed):
        t1 = clock()
        await engine.on_tick(tick)
        if i in closing:
            bar_ticks.append(clock() - t1)
    return float(np.median(runs)), signals, float(np.mean(bar_ticks)) * 1e6


# ---- the original design's per-tick pandas recompute ------------------------------------------

def ema_cross(df: pd.DataFrame, fast: int, slow: int) -> int:
    c = df["close"]
    f, s = c.ewm(span=fast, adjust=False).mean(), c.ewm(span=slow, adjust=False).mean()
    tr = pd.concat([df["high"] - df["low"], (df["high"] - c.shift()).abs(), (df["low"] - c.shift()).abs()],
                   axis=1).max(axis=1)
    atr = tr.ewm(alpha=1 / 14, adjust=False).mean().iloc[-1]
    now, before = f.iloc[-1] - s.iloc[-1], f.iloc[-2] - s.iloc[-2]
    return int((now > 0) != (before > 0) and atr > 0)


def rsi(df: pd.DataFrame) -> int:
    d = df["close"].diff()
    gain = d.clip(lower=0).ewm(alpha=1 / 14, adjust=False).mean()
    loss = (-d.clip(upper=0)).ewm(alpha=1 / 14, adjust=False).mean()
    value = (100 - 100 / (1 + gain / loss)).iloc[-1]
    return int(value < 30 or value > 70)


def mean_reversion(df: pd.DataFrame) -> int:
    c = df["close"]
    z = ((c - c.rolling(20).mean()) / c.rolling(20).std()).iloc[-1]
    return int(abs(z) > 2)


def vwap_breakout(df: pd.DataFrame) -> int:
    tp = (df["high"] + df["low"] + df["close"]) / 3
    day = (df.index.to_series() + 19800) // 86400
    vwap = (tp * df["volume"]).groupby(day).cumsum() / df["volume"].groupby(day).cumsum()
    avg = df["volume"].rolling(20).mean()
    return int(df["close"].iloc[-1] > vwap.iloc[-1] and df["volume"].iloc[-1] > 1.5 * avg.iloc[-1])


BASELINES = {"ema_crossover": lambda df: ema_cross(df, 50, 200), "rsi": rsi, "mean_reversion": mean_reversion,
             "vwap_breakout": vwap_breakout, "bull_call_spread": lambda df: ema_cross(df, 9, 21),
             "bear_put_spread": lambda df: ema_cross(df, 9, 21)}


def baseline_per_tick(name: str, seed: list[m.Bar], feed: list[m.Tick]) -> float:
    df = pd.DataFrame({"open": [b.open for b in seed], "high": [b.high for b in seed], "low": [b.low for b in seed],
                       "close": [b.close for b in seed], "volume": [float(b.volume) for b in seed]},
                      index=pd.Index([b.start for b in seed], name="start"))
    fn, last_volume = BASELINES[name], None
    t0 = time.perf_counter()
    for tick in feed:
        start = bar_start(tick.exchange_timestamp, 300)
        vol = tick.volume_traded - last_volume if last_volume is not None else 0
        last_volume = tick.volume_traded
        p = tick.last_price
        if start == df.index[-1]:  # the tick updates the candle in progress
            i = len(df) - 1
            df.iloc[i, 1] = max(df.iloc[i, 1], p)
            df.iloc[i, 2] = min(df.iloc[i, 2], p)
            df.iloc[i, 3] = p
            df.iloc[i, 4] += vol
        else:  # a new candle: append the row, keep the last 500
            row = pd.DataFrame({"open": [p], "high": [p], "low": [p], "close": [p], "volume": [float(vol)]},
                               index=pd.Index([start], name="start"))
            df = pd.concat([df, row]).tail(SEED_BARS)
        fn(df)
    return (time.perf_counter() - t0) / len(feed) * 1e6


# ---- main -------------------------------------------------------------------------------------

async def main(n_kta: int, n_base: int) -> None:
    rng = np.random.default_rng(20261125)
    seed = seed_bars(rng)
    feed = ticks(rng, max(n_kta, n_base), seed[-1].close)
    insts = instruments()
    port = natsd.free_port()
    with tempfile.TemporaryDirectory() as tmp:
        server = natsd.start(port, Path(tmp) / "js")
        try:
            bus = await Bus.connect(f"nats://127.0.0.1:{port}", "bench-strategy")
            await bus.ensure_streams()
            print(f"{len(seed)} seeded 5-minute bars; {n_kta} ticks (kta) / {n_base} ticks (pandas baseline), "
                  f"one per exchange second\n")
            print(f"{'strategy':<18}{'kta µs/tick':>12}{'bar-close':>10}{'pandas µs/tick':>16}{'ratio':>9}  targets (≥{TARGET_RATIO:.0f}×,"
                  f" <{TARGET_US:.0f} µs)")
            worst_us, worst_ratio = 0.0, math.inf
            for name in STRATEGIES:
                with tempfile.TemporaryDirectory() as data_dir:
                    us, signals, bar_us = await kta_per_tick(bus, data_dir, name, seed, feed[:n_kta], insts)
                worst_us = max(worst_us, us)
                if name in BASELINES:
                    base = baseline_per_tick(name, seed, feed[:n_base])
                    ratio = base / us
                    worst_ratio = min(worst_ratio, ratio)
                    verdict = "ok" if ratio >= TARGET_RATIO and us < TARGET_US else "MISSED"
                    print(f"{name:<18}{us:>12.2f}{bar_us:>10.1f}{base:>16.1f}{ratio:>8.0f}×  {verdict} ({signals} signals)")
                else:
                    verdict = "ok" if us < TARGET_US else "MISSED"
                    print(f"{name:<18}{us:>12.2f}{bar_us:>10.1f}{'-':>16}{'-':>9}  {verdict} ({signals} signals; no pandas baseline)")
            print(f"\nworst kta cost {worst_us:.2f} µs/tick/strategy (target < {TARGET_US:.0f}); "
                  f"worst ratio vs pandas recompute {worst_ratio:.0f}× (target ≥ {TARGET_RATIO:.0f}×)")
            await bus.close()
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    warnings.simplefilter("ignore")
    args = [int(a) for a in sys.argv[1:3]]
    asyncio.run(main(args[0] if args else 30_000, args[1] if len(args) > 1 else 1_500))
