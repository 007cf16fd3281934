"""Incremental indicators agree with TA-Lib (1e-9 relative) and with a pandas recomputation."""

import numpy as np
import pandas as pd
import pytest
import talib

from strategy_worker import indicators as ind

N = 5000


@pytest.fixture(scope="module")
def series():
    rng = np.random.default_rng(20261124)
    close = 20000 * np.exp(np.cumsum(rng.normal(0, 0.002, N)))
    high = close * (1 + np.abs(rng.normal(0, 0.001, N)))
    low = close * (1 - np.abs(rng.normal(0, 0.001, N)))
    volume = rng.integers(100, 10_000, N).astype(float)
    return close, high, low, volume


def run(indicator, *columns):
    out = []
    for values in zip(*columns):
        v = indicator.update(*values)
        out.append(np.nan if v is None else v)
    return np.array(out, dtype=float)


def agree(ours, ref):
    ours, ref = np.asarray(ours, dtype=float), np.asarray(ref, dtype=float)
    assert np.array_equal(np.isnan(ours), np.isnan(ref)), "warm-up differs"
    mask = ~np.isnan(ref)
    np.testing.assert_allclose(ours[mask], ref[mask], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("period", [5, 20, 50, 200])
def test_sma_ema(series, period):
    close = series[0]
    agree(run(ind.SMA(period), close), talib.SMA(close, period))
    agree(run(ind.EMA(period), close), talib.EMA(close, period))
    agree(run(ind.SMA(period), close), pd.Series(close).rolling(period).mean())


@pytest.mark.parametrize("period", [2, 14, 30])
def test_rsi(series, period):
    agree(run(ind.RSI(period), series[0]), talib.RSI(series[0], period))


def test_rsi_against_pandas_wilder(series):
    close = pd.Series(series[0])
    d = close.diff()
    gain, loss = d.clip(lower=0), -d.clip(upper=0)
    n = 14
    ag, al = [np.nan] * len(close), [np.nan] * len(close)
    ag[n], al[n] = gain[1 : n + 1].mean(), loss[1 : n + 1].mean()
    for i in range(n + 1, len(close)):
        ag[i] = (ag[i - 1] * (n - 1) + gain[i]) / n
        al[i] = (al[i - 1] * (n - 1) + loss[i]) / n
    ref = 100 * np.array(ag) / (np.array(ag) + np.array(al))
    agree(run(ind.RSI(n), series[0]), ref)


@pytest.mark.parametrize("period", [14, 21])
def test_atr(series, period):
    close, high, low, _ = series
    agree(run(ind.ATR(period), high, low, close), talib.ATR(high, low, close, period))


@pytest.mark.parametrize("period,k", [(20, 2.0), (10, 1.5)])
def test_bollinger_and_std(series, period, k):
    close = series[0]
    up, mid, lo = talib.BBANDS(close, period, k, k)
    bands = ind.BollingerBands(period, k)
    got = np.array([(np.nan,) * 3 if v is None else v for v in (bands.update(x) for x in close)])
    agree(got[:, 0], up)
    agree(got[:, 1], mid)
    agree(got[:, 2], lo)
    agree(run(ind.RollingStd(period), close), talib.STDDEV(close, period, 1))
    agree(run(ind.RollingStd(period), close), pd.Series(close).rolling(period).std(ddof=0))


def test_macd(series):
    close = series[0]
    macd, signal, hist = talib.MACD(close, 12, 26, 9)
    m = ind.MACD(12, 26, 9)
    got = np.array([(np.nan,) * 3 if v is None else v for v in (m.update(x) for x in close)])
    agree(got[:, 0], macd)
    agree(got[:, 1], signal)
    agree(got[:, 2], hist)


def test_zscore_vs_pandas(series):
    close = pd.Series(series[0])
    mean, std = close.rolling(30).mean(), close.rolling(30).std(ddof=0)
    agree(run(ind.ZScore(30), close), (close - mean) / std)


def test_vwap_resets_each_session(series):
    close, _, _, volume = series
    session = np.repeat(np.arange(N // 375 + 1), 375)[:N]
    df = pd.DataFrame({"p": close, "v": volume, "s": session})
    ref = (df.p * df.v).groupby(df.s).cumsum() / df.v.groupby(df.s).cumsum()
    agree(run(ind.VWAP(), close, volume, session), ref)
