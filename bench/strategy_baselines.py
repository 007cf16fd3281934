"""The baselines ``bench/strategy_tick.py`` measures the strategy engine against, on the same seeded bars and ticks:
pandas and TA-Lib recomputing a strategy's indicators over a 500-bar window on each bar close (the fair ones), the
same TA-Lib loop over the throughput run's ticks publishing its signals to JetStream, and the original design's
pandas recomputed on every tick. Times are CPU seconds of this process (``clock``)."""

from __future__ import annotations

import json
import statistics
import time

import numpy as np
import pandas as pd
import talib

from shared import ist, subjects
from shared import messages as m
from shared.bus import Bus

WINDOW = 500  # the bars a baseline recomputes over, and the warm-up before the per-bar figures
clock = time.process_time  # CPU seconds: the load on a shared machine stretches wall time, not CPU time


def median_of(runs: int, fn) -> float:
    return statistics.median(fn() for _ in range(runs))


def pandas_signal(name: str, df: pd.DataFrame) -> bool:
    c = df["close"]
    if name == "ema_crossover":
        fast, slow = c.ewm(span=50, adjust=False).mean(), c.ewm(span=200, adjust=False).mean()
        prev_close = c.shift()
        tr = pd.concat([df["high"] - df["low"], (df["high"] - prev_close).abs(), (df["low"] - prev_close).abs()],
                       axis=1).max(axis=1)
        atr = tr.ewm(alpha=1 / 14, adjust=False).mean().iloc[-1]
        return bool((fast.iloc[-1] > slow.iloc[-1]) != (fast.iloc[-2] > slow.iloc[-2]) and atr > 0)
    if name == "rsi":
        d = c.diff()
        gain = d.clip(lower=0).ewm(alpha=1 / 14, adjust=False).mean()
        loss = (-d.clip(upper=0)).ewm(alpha=1 / 14, adjust=False).mean()
        value = (100 - 100 / (1 + gain / loss)).iloc[-1]
        return bool(value < 30 or value > 70)
    if name == "mean_reversion":
        z = ((c - c.rolling(20).mean()) / c.rolling(20).std(ddof=0)).iloc[-1]
        return bool(abs(z) > 2)
    tp = (df["high"] + df["low"] + c) / 3
    day = (df.index.to_series() + ist.OFFSET_SECONDS) // ist.DAY_SECONDS
    vwap = (tp * df["volume"]).groupby(day).cumsum() / df["volume"].groupby(day).cumsum()
    avg = df["volume"].rolling(20).mean()
    return bool(c.iloc[-1] > vwap.iloc[-1] and df["volume"].iloc[-1] > 1.5 * avg.iloc[-1])


class Window:
    """The last WINDOW bars as numpy arrays, appended in O(1) amortised (a buffer twice the window,
    slid back when full): what a fair vectorised baseline keeps between bar closes."""

    def __init__(self, bars: list[m.Bar]) -> None:
        self.cols = {k: np.empty(2 * WINDOW) for k in ("high", "low", "close", "volume", "start")}
        self.n = 0
        for b in bars:
            self.append(b)

    def append(self, b: m.Bar) -> None:
        if self.n == 2 * WINDOW:
            for a in self.cols.values():
                a[:WINDOW - 1] = a[WINDOW + 1:]
            self.n = WINDOW - 1
        for k, a in self.cols.items():
            a[self.n] = getattr(b, k)
        self.n += 1

    def view(self, k: str) -> np.ndarray:
        return self.cols[k][max(0, self.n - WINDOW):self.n]


def window_per_bar(bars: list[m.Bar], on_bar) -> float:
    """Microseconds per bar of ``on_bar(window)`` over a rolling window, median of 3 runs."""
    def run() -> float:
        w = Window(bars[:WINDOW])
        live = bars[WINDOW:]
        t0 = clock()
        for b in live:
            w.append(b)
            on_bar(w)
        return (clock() - t0) / len(live) * 1e6
    return median_of(3, run)


def pandas_per_bar(name: str, bars: list[m.Bar]) -> float:
    def on_bar(w: Window) -> None:
        df = pd.DataFrame({k: w.view(k) for k in ("high", "low", "close", "volume")},
                          index=pd.Index(w.view("start")), copy=False)
        pandas_signal(name, df)
    return window_per_bar(bars, on_bar)


def talib_signal(name: str, w: Window) -> bool:
    h, lo, c, v = w.view("high"), w.view("low"), w.view("close"), w.view("volume")
    if name == "ema_crossover":
        fast, slow = talib.EMA(c, 50), talib.EMA(c, 200)
        atr = talib.ATR(h, lo, c, 14)[-1]
        return bool((fast[-1] > slow[-1]) != (fast[-2] > slow[-2]) and atr > 0)
    if name == "rsi":
        value = talib.RSI(c, 14)[-1]
        return bool(value < 30 or value > 70)
    if name == "mean_reversion":
        mean, sd = talib.SMA(c, 20)[-1], talib.STDDEV(c, 20)[-1]
        return bool(abs((c[-1] - mean) / sd) > 2)
    day = (w.view("start") + ist.OFFSET_SECONDS) // ist.DAY_SECONDS
    today = day == day[-1]
    tp = (h[today] + lo[today] + c[today]) / 3
    vwap = (tp * v[today]).sum() / v[today].sum()
    return bool(c[-1] > vwap and v[-1] > 1.5 * talib.SMA(v, 20)[-1])


def talib_per_bar(name: str, bars: list[m.Bar]) -> float:
    return window_per_bar(bars, lambda w: talib_signal(name, w))


async def talib_ticks_per_s(bus: Bus, names: list[str], tokens: list[int], ticks: list[m.Tick],
                            history: dict[int, list[m.Bar]]) -> tuple[float, int]:
    """The fair baseline: 5-minute bars built from the same ticks in a plain loop; on each bar close every
    strategy's indicators computed with TA-Lib over its symbol's last 500 bars (``talib_signal``), and a
    signal published to JetStream (awaiting its ack, as kta does) when a strategy's condition turns true.
    (ticks per CPU second, signals), median of 3."""
    async def run() -> tuple[float, int]:
        windows = {t: Window(history[t]) for t in tokens}
        building: dict[int, list] = {}
        held: set[tuple[int, int]] = set()
        signals = 0
        t0 = clock()
        for tick in ticks:
            token, price, start = tick.instrument_token, tick.last_price, tick.exchange_timestamp // 300 * 300
            b = building.get(token)
            if b is None or b[0] != start:
                if b is not None:  # the bar closed: every strategy on the symbol decides
                    w = windows[token]
                    w.append(m.Bar(token, "5minute", b[0], b[1], b[2], b[3], b[4], b[5]))
                    for k, name in enumerate(names):
                        if not talib_signal(name, w):
                            held.discard((k, token))
                        elif (k, token) not in held:
                            held.add((k, token))
                            signals += 1
                            await bus.js.publish(subjects.signals(f"BENCH{k % 10}"), json.dumps(
                                {"strategy": f"s{k}", "token": token, "price": price, "bar": b[0]}).encode(),
                                headers={"Nats-Msg-Id": f"talib-{k}-{token}-{b[0]}-{signals}"})
                building[token] = [start, price, price, price, price, tick.volume_traded]
            else:
                b[2], b[3], b[4], b[5] = max(b[2], price), min(b[3], price), price, tick.volume_traded
        return len(ticks) / (clock() - t0), signals
    runs = [await run() for _ in range(3)]
    return statistics.median(r for r, _ in runs), runs[-1][1]


def original_ticks_per_s(names: list[str], tokens: list[int], ticks: list[m.Tick],
                         history: dict[int, list[m.Bar]]) -> float:
    """The original design done plainly: on EVERY tick the symbol's 5-minute candles (a DataFrame of the last
    500) take the tick, and each of the 100 strategies recomputes its indicators with pandas over them
    (``strategy.on_tick`` -> ``pandas_signal``). Kinder to it than the design: one DataFrame per symbol
    shared by the strategies, the open candle updated in place, no signal published. Ticks per CPU second
    over the first ``len(ticks)`` ticks (each costs ~100 pandas recomputes: a few dozen are enough)."""
    frames = {t: pd.DataFrame({k: [float(getattr(b, k)) for b in history[t]] for k in ("high", "low", "close", "volume")},
                              index=pd.Index([b.start for b in history[t]])) for t in tokens}
    t0 = clock()
    for tick in ticks:
        token, price, start = tick.instrument_token, tick.last_price, tick.exchange_timestamp // 300 * 300
        df = frames[token]
        if df.index[-1] == start:
            df.iloc[-1, :3] = [max(df.iat[-1, 0], price), min(df.iat[-1, 1], price), price]
            df.iat[-1, 3] = float(tick.volume_traded)
        else:
            row = pd.DataFrame({"high": [price], "low": [price], "close": [price],
                                "volume": [float(tick.volume_traded)]}, index=pd.Index([start]))
            df = frames[token] = pd.concat([df, row]).iloc[-WINDOW:]
        for name in names:
            pandas_signal(name, df)
    return len(ticks) / (clock() - t0)
