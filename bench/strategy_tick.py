"""The strategy engine's cost, against fair baselines, in one run.

1. **Per bar close, per strategy** — kta acts on bar close: the bar builder is updated in place on
   every tick and a completed bar runs the strategy's O(1) indicator updates. The fair baselines do the
   same work at the same moment: on each bar close they append the bar to a 500-bar window and
   recompute the strategy's indicators over it with **pandas** (``.ewm`` / ``.rolling``, as the original
   design did, but on bar close instead of on every tick) or with **TA-Lib** over numpy arrays. All three
   see the same seeded bars and take the same decision; the figure is µs per bar close and the ratio is
   baseline ÷ kta (> 1: kta faster).
2. **Engine overhead** — bars/s calling a strategy's ``on_bar`` directly vs through
   ``StrategyEngine.on_bar`` (routing, per-symbol instance, vetting, bar published to a real
   nats-server). Ratio = direct ÷ engine (the engine's cost as a multiple of the strategy's).
3. **Engine throughput** — 100 strategies (ema_crossover, rsi, mean_reversion, vwap_breakout) × 50
   symbols each (5,000 instances, each warmed on WARM_BARS bars of history first, so every indicator is
   past its period as in a live session), seeded ticks round-robin over the 50 symbols, one per symbol
   per exchange second, through ``StrategyEngine.on_tick`` on one event loop (one core) with a real
   nats-server for bars and signals. Target ≥ 50,000 ticks/s. The figure is CPU time of the engine's
   process (one core; a shared machine's load stretches wall time, printed beside it). FAIR BASELINE in
   the same run: the same ticks through a plain loop that builds the 5-minute bars and, on each bar
   close, runs each of the 100 strategies' indicators with TA-Lib over its symbol's 500-bar window (pandas
   on bar close is slower still: section 1). And the per-tick cost with 0 vs 100 strategies that do not
   override ``on_tick`` (target: the same), measured in turns. ORIGINAL DESIGN in the same run: pandas
   recomputed on every tick for each strategy (its ``on_tick``), over the first ORIGINAL_TICKS ticks.

Times are CPU seconds of this process (``time.process_time``); the load is printed at the start and the
end. Median of three runs each. The baselines' code is ``bench/strategy_baselines.py``. Usage: python bench/strategy_tick.py [bars] [throughput_ticks]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
import warnings
from datetime import date, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stack import machine_load
from bench.strategy_baselines import (WINDOW, clock, median_of, original_ticks_per_s, pandas_per_bar,
                                      talib_per_bar, talib_ticks_per_s)
from kite_sim.instruments import Universe
from shared import natsd
from shared import messages as m
from shared.bus import Bus
from shared.config import load
from shared.ist import IST
from shared.kite.models import Instrument
from strategy_worker.engine import StrategyEngine
from strategy_worker.runner import StrategyRunner
from strategy_worker.strategies import registry
from strategy_worker.strategies.context import StrategyContext

DAY = date(2026, 11, 25)
OPEN = int(datetime(DAY.year, DAY.month, DAY.day, 9, 15, tzinfo=IST).timestamp())
INFY = 408065
EQUITY = ["ema_crossover", "rsi", "mean_reversion", "vwap_breakout"]
TARGET_TICKS = 50_000
WARM_BARS = 250
ORIGINAL_TICKS = 30  # the original design's loop is ~1e4 times slower per tick


def instruments() -> list[Instrument]:
    return [Instrument(instrument_token=i.instrument_token, exchange_token=i.exchange_token,
                       tradingsymbol=i.tradingsymbol, name=i.name, last_price=0.0, expiry=i.expiry, strike=i.strike,
                       tick_size=i.tick_size, lot_size=i.lot_size, instrument_type=i.instrument_type,
                       segment=i.segment, exchange=i.exchange) for i in Universe(DAY).by_token.values()]


def walk_bars(rng: np.random.Generator, token: int, n: int, price: float = 1500.0) -> list[m.Bar]:
    closes = price * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    spread = np.abs(rng.normal(0, 0.001, n)) * closes
    vols = rng.integers(50_000, 150_000, n)
    return [m.Bar(token, "5minute", OPEN + 300 * i, float(c), float(c + s), float(c - s), float(c), int(v))
            for i, (c, s, v) in enumerate(zip(closes, spread, vols))]


# ---- 1. per bar close: kta vs pandas vs TA-Lib (``strategy_baselines``) ---------------------------

def kta_per_bar(name: str, bars: list[m.Bar], insts: list[Instrument]) -> float:
    def run() -> float:
        ctx = StrategyContext(insts, {})
        runner = StrategyRunner(registry.get(name), "b", "BENCH1", registry.validate_params(name, {}), [INFY], ctx)
        for bar in bars[:WINDOW]:
            runner.warm_up(bar)
        live = bars[WINDOW:]
        t0 = clock()
        for bar in live:
            ctx.last_ticks[INFY] = m.Tick(INFY, "full", True, bar.close)
            runner.on_bar(bar)
        return (clock() - t0) / len(live) * 1e6
    return median_of(3, run)


# ---- 2. and 3. the engine ---------------------------------------------------------------------

def engine_with(bus: Bus, data_dir: str, insts: list[Instrument], names: list[str], tokens: list[int],
                history: dict[int, list[m.Bar]] | None = None):
    engine = StrategyEngine(bus, load(environ={}, nats_url=bus.nc.connected_url.geturl(), data_dir=data_dir))
    engine.ctx.set_instruments(insts)
    for k, name in enumerate(names):
        user = f"BENCH{k % 10}"
        engine.users[user].live = True
        r = engine.make(user, f"s{k}", name, registry.validate_params(name, {}), tokens)
        for bars in (history or {}).values():
            for bar in bars:
                r.runner.warm_up(bar)
        engine.put(r)
    for t in tokens:
        engine.series_ready(t)
    engine.build_index()  # once, before the clock starts (the engine does it when strategies change)
    return engine


async def engine_bars_per_s(bus: Bus, insts: list[Instrument], bars: list[m.Bar], k: int) -> tuple[float, float]:
    """``k`` ema_crossover strategies on one symbol: strategy-bars/s calling their on_bar directly, and
    through the engine (the bar is published once per bar, whatever k)."""
    def direct() -> float:
        ctx = StrategyContext(insts, {})
        params = registry.validate_params("ema_crossover", {})
        strategies = [registry.get("ema_crossover")(f"d{i}", "BENCH1", params, INFY, ctx) for i in range(k)]
        t0 = clock()
        for bar in bars:
            for s in strategies:
                s.on_bar(bar)
        return k * len(bars) / (clock() - t0)

    async def through() -> float:
        with tempfile.TemporaryDirectory() as d:
            engine = engine_with(bus, d, insts, ["ema_crossover"] * k, [INFY])
            t0 = clock()
            for bar in bars:
                await engine.on_bar(bar)
            return k * len(bars) / (clock() - t0)
    return median_of(3, direct), statistics.median([await through() for _ in range(3)])


def round_robin(rng: np.random.Generator, tokens: list[int], n: int, within_bar: bool = False) -> list[m.Tick]:
    """One tick per symbol per exchange second, or (``within_bar``) n ticks all inside one bar."""
    prices = dict.fromkeys(tokens, 1500.0)
    steps = rng.normal(0, 0.0005, n)
    out = []
    for i in range(n):
        t = tokens[i % len(tokens)]
        prices[t] *= 1 + float(steps[i])
        ts = OPEN + 1 + i * 298 // n if within_bar else OPEN + i // len(tokens)
        out.append(m.Tick(t, "full", True, round(prices[t], 2), volume_traded=100 * (i + 1), exchange_timestamp=ts,
                          received_at=0))
    return out


def history_for(rng: np.random.Generator, tokens: list[int]) -> dict[int, list[m.Bar]]:
    """WARM_BARS 5-minute bars per symbol ending where the ticks start, priced where they start (1500)."""
    out = {}
    for t in tokens:
        bars = walk_bars(rng, t, WARM_BARS)
        scale = 1500.0 / bars[-1].close
        out[t] = [m.Bar(t, b.interval, b.start - 300 * WARM_BARS, b.open * scale, b.high * scale, b.low * scale,
                        b.close * scale, b.volume) for b in bars]
    return out


async def ticks_per_s(bus: Bus, insts: list[Instrument], names: list[str], tokens: list[int],
                      ticks: list[m.Tick], history: dict[int, list[m.Bar]]) -> tuple[float, float, int]:
    """(ticks per CPU second, ticks per wall second, signals published), median of 3."""
    cpu, wall, signals = [], [], 0
    for _ in range(3):
        with tempfile.TemporaryDirectory() as d:
            engine = engine_with(bus, d, insts, names, tokens, history)
            on_tick = engine.on_tick
            t0, w0 = clock(), time.perf_counter()
            for tick in ticks:
                await on_tick(tick)
            cpu.append(len(ticks) / (clock() - t0))
            wall.append(len(ticks) / (time.perf_counter() - w0))
            signals = engine.signals_published
    return statistics.median(cpu), statistics.median(wall), signals


async def alternating(bus: Bus, insts: list[Instrument], names: list[str], tokens: list[int],
                      ticks: list[m.Tick], runs: int = 5) -> tuple[float, float]:
    """ticks/s with no strategy and with ``names``, measured in turns (a loaded machine drifts)."""
    bare, full = [], []
    for _ in range(runs):
        for out, which in ((bare, []), (full, names)):
            with tempfile.TemporaryDirectory() as d:
                engine = engine_with(bus, d, insts, which, tokens)
                t0 = clock()
                for tick in ticks:
                    await engine.on_tick(tick)
                out.append(len(ticks) / (clock() - t0))
    return statistics.median(bare), statistics.median(full)


# ---- main -------------------------------------------------------------------------------------

async def main(n_bars: int, n_ticks: int) -> None:
    rng = np.random.default_rng(20261125)
    insts = instruments()
    bars = walk_bars(rng, INFY, WINDOW + n_bars)
    print(f"CPU time of this process throughout (time.process_time); {machine_load()}\n")
    print(f"1. per bar close: {n_bars} bars after a {WINDOW}-bar warm-up (median of 3)\n")
    print(f"{'strategy':<16}{'kta µs/bar':>11}{'pandas µs/bar':>15}{'ratio':>8}{'TA-Lib µs/bar':>15}{'ratio':>8}")
    for name in EQUITY:
        kta, pd_us, ta_us = kta_per_bar(name, bars, insts), pandas_per_bar(name, bars), talib_per_bar(name, bars)
        print(f"{name:<16}{kta:>11.2f}{pd_us:>15.1f}{pd_us / kta:>7.0f}×{ta_us:>15.1f}{ta_us / kta:>7.1f}×")

    port = natsd.free_port()
    with tempfile.TemporaryDirectory() as tmp:
        server = natsd.start(port, Path(tmp) / "js")
        try:
            bus = await Bus.connect(f"nats://127.0.0.1:{port}", "bench-strategy")
            await bus.ensure_streams()
            print(f"\n2. engine overhead (ema_crossover on one symbol, {len(bars)} bars; strategy-bars/s):")
            for k in (1, 100):
                direct, through = await engine_bars_per_s(bus, insts, bars, k)
                print(f"   {k:>3} strateg{'y' if k == 1 else 'ies'}: on_bar direct {direct:>9,.0f}/s, through the engine "
                      f"{through:>9,.0f}/s — the engine costs {direct / through:.1f}× the strategy")

            symbols = [i.instrument_token for i in insts if i.segment == "NSE" and i.instrument_type == "EQ"][:50]
            names = [EQUITY[k % len(EQUITY)] for k in range(100)]
            feed = round_robin(rng, symbols, n_ticks)
            history = history_for(rng, symbols)
            rate, wall, signals = await ticks_per_s(bus, insts, names, symbols, feed, history)
            base, base_signals = await talib_ticks_per_s(bus, names, symbols, feed, history)
            print(f"\n3. engine throughput: 100 strategies × {len(symbols)} symbols (5,000 instances, warmed on "
                  f"{WARM_BARS} bars each), {n_ticks:,} ticks ({n_ticks // len(symbols) // 300} bars per symbol, "
                  f"{signals} signals published):\n"
                  f"   {rate:,.0f} ticks per CPU second on one core — {rate / TARGET_TICKS:.2f}× the {TARGET_TICKS:,} "
                  f"target ({'met' if rate >= TARGET_TICKS else 'MISSED'}); wall clock {wall:,.0f}/s ({machine_load()})\n"
                  f"   fair baseline, same ticks: bars built in a plain loop, TA-Lib on bar close for each strategy, a "
                  f"signal to JetStream when its condition turns true ({base_signals} signals): {base:,.0f} ticks per CPU "
                  f"second — kta {rate / base:.2f}× (kta also saves each signalling instance's book to SQLite)")
            plain = original_ticks_per_s(names, symbols, feed[:ORIGINAL_TICKS], history)
            print(f"   original design, same ticks (the first {ORIGINAL_TICKS}): pandas recomputed on every tick for each of "
                  f"the 100 strategies: {plain:,.1f} ticks per CPU second — kta {rate / plain:,.0f}× (its own figure: "
                  f"\"100+ ticks/sec\" with one strategy's 20-50 ms on_tick)")
            within = round_robin(rng, symbols, n_ticks // 3, within_bar=True)
            bare, full = await alternating(bus, insts, names, symbols, within)
            print(f"   ticks that close no bar: {1e6 / bare:.2f} µs/tick with no strategy, {1e6 / full:.2f} µs/tick "
                  f"with 100 strategies that do not override on_tick (ratio {bare / full:.2f}); {machine_load()}")
            await bus.close()
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    warnings.simplefilter("ignore")
    args = [int(a) for a in sys.argv[1:3]]
    asyncio.run(main(args[0] if args else 2_000, args[1] if len(args) > 1 else 150_000))
