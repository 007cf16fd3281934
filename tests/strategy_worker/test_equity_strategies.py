"""The four equity strategies on crafted bar series: the exact signals they must emit, and series
on which they must stay silent. Expected bar indices come from TA-Lib / pandas, not our code."""

from datetime import date, datetime

import msgspec
import numpy as np
import pandas as pd
import talib

from shared.ist import IST
from shared.messages import Signal, TransactionType
from strategy_worker.strategies.context import StrategyContext
from tests.strategy_worker.kit import (
    INFY,
    INSTRUMENTS,
    NIFTY,
    NIFTY_FUT,
    Desk,
    bars,
    context,
    feed,
    make,
)

BUY, SELL = TransactionType.BUY, TransactionType.SELL


def paise(rupees: float, tick: float = 0.05) -> int:
    step = round(tick * 100)
    return round(round(rupees * 100) / step) * step


def first(mask, after: int = 0) -> int:
    idx = [i for i in np.flatnonzero(mask) if i > after]
    return int(idx[0])


def summary(out):
    return [(i, s.intent, s.transaction_type, s.quantity) for i, s in out]


# ---- ema_crossover ----------------------------------------------------------------------------

def ema_series():
    return [100.0] * 20 + [100.0 + i for i in range(1, 11)] + [110.0 - 2 * i for i in range(1, 16)]


def test_ema_crossover_golden_then_death_cross():
    closes = ema_series()
    s, desk = make("ema_crossover", {"fast": 3, "slow": 6, "quantity": 10}), Desk()
    out = feed(s, bars(closes), desk)
    c = np.array(closes)
    diff = talib.EMA(c, 3) - talib.EMA(c, 6)
    golden = first(diff > 1e-12)
    death = first(diff < 0, after=golden)
    assert summary(out) == [(golden, "entry", BUY, 10), (death, "exit", SELL, 10), (death, "entry", SELL, 10)]
    atr = talib.ATR(c + 0.5, c - 0.5, c, 14)
    entry = out[0][1]
    assert isinstance(entry, Signal) and entry.tradingsymbol == "INFY" and entry.exchange == "NSE"
    assert entry.stop_loss == paise(c[golden] - 2 * atr[golden])
    assert entry.target == paise(c[golden] + 4 * atr[golden])
    short = out[2][1]
    assert short.stop_loss == paise(c[death] + 2 * atr[death]) and short.target == paise(c[death] - 4 * atr[death])
    assert out[1][1].stop_loss is None and out[1][1].intent == "exit"
    assert all(0.5 <= sig.confidence <= 1 for _, sig in out)
    assert len({sig.id for _, sig in out}) == 3
    assert s.positions() == {INFY: -10} == {INFY: desk.held(s, INFY)}


def test_ema_crossover_reverses_only_once_the_exit_has_filled():
    s, desk = make("ema_crossover", {"fast": 3, "slow": 6, "quantity": 10}), Desk()
    series = bars(ema_series())
    out = feed(s, series[:25], desk)
    assert [sig.intent for _, sig in out] == ["entry"]
    out = feed(s, series[25:])  # nothing fills: the death cross sends the exit only
    assert [(sig.intent, sig.transaction_type) for _, sig in out] == [("exit", SELL)]
    assert s.positions() == {INFY: 10}
    follow = desk.fill(s, out[0][1])
    assert [(sig.intent, sig.transaction_type, sig.quantity) for sig in follow] == [("entry", SELL, 10)]


def test_ema_crossover_without_reverse_only_exits():
    out = feed(make("ema_crossover", {"fast": 3, "slow": 6, "reverse": False}), bars(ema_series()), Desk())
    assert [(sig.intent, sig.transaction_type) for _, sig in out] == [("entry", BUY), ("exit", SELL)]


def test_ema_crossover_silent_on_a_steady_trend_and_a_flat_line():
    assert feed(make("ema_crossover", {"fast": 3, "slow": 6}), bars([100.0 + i for i in range(60)])) == []
    assert feed(make("ema_crossover", {"fast": 3, "slow": 6}), bars([100.0] * 60)) == []


def test_an_index_is_traded_through_its_nearest_future_in_lots():
    ctx = context()
    s = make("ema_crossover", {"fast": 3, "slow": 6, "lots": 2}, tokens=[NIFTY], ctx=ctx)
    closes = [24000.0] * 20 + [24000.0 + 10 * i for i in range(1, 6)]
    out = feed(s, bars(closes, token=NIFTY))
    assert len(out) == 1
    sig = out[0][1]
    assert (sig.tradingsymbol, sig.instrument_token, sig.quantity) == ("NIFTY26DECFUT", NIFTY_FUT, 130)
    assert s.required_tokens() == {NIFTY, NIFTY_FUT}


def test_after_its_expiry_the_index_is_traded_through_the_next_months_future():
    """On the day after NIFTY26DECFUT's expiry, even before the new day's list (without it) arrives, the nearest
    future is January's: an order on the expired contract is refused by the broker (Instrument has expired)."""
    jan = msgspec.structs.replace(next(i for i in INSTRUMENTS if i.instrument_token == NIFTY_FUT),
                                  instrument_token=NIFTY_FUT + 256, tradingsymbol="NIFTY27JANFUT",
                                  expiry=date(2027, 1, 26))
    now = {"t": int(datetime(2026, 12, 29, 15, 29, tzinfo=IST).timestamp())}
    ctx = StrategyContext([*INSTRUMENTS, jan], {}, clock=lambda: now["t"])
    assert ctx.tradable(NIFTY, lots=1)[0].tradingsymbol == "NIFTY26DECFUT"  # its last day: still trading
    now["t"] = int(datetime(2026, 12, 30, 9, 15, tzinfo=IST).timestamp())
    assert ctx.tradable(NIFTY, lots=1)[0].tradingsymbol == "NIFTY27JANFUT"


# ---- rsi --------------------------------------------------------------------------------------

def rsi_series():
    rng = np.random.default_rng(5)
    calm = list(100 + np.cumsum(rng.choice([-0.3, 0.3], 30)))
    fall = [calm[-1] - 1.0 * i for i in range(1, 16)]
    rise = [fall[-1] + 0.8 * i for i in range(1, 30)]
    return calm + fall + rise


def test_rsi_buys_the_recovery_from_oversold_and_exits_at_50():
    closes = rsi_series()
    out = feed(make("rsi", {"quantity": 5}), bars(closes), Desk())
    r = talib.RSI(np.array(closes), 14)
    was_oversold = first(r < 30)
    entry = first((r >= 30) & (np.roll(r, 1) < 30), after=was_oversold)
    exit_ = first(r >= 50, after=entry)
    assert summary(out) == [(entry, "entry", BUY, 5), (exit_, "exit", SELL, 5)]
    sig = out[0][1]
    assert sig.stop_loss == paise(closes[entry] * 0.99) and sig.target == paise(closes[entry] * 1.02)


def test_rsi_sells_the_fall_from_overbought():
    closes = [200.0 - x for x in rsi_series()]
    out = feed(make("rsi"), bars(closes), Desk())
    assert [(sig.intent, sig.transaction_type) for _, sig in out] == [("entry", SELL), ("exit", BUY)]
    sig = out[0][1]
    assert sig.stop_loss > paise(closes[out[0][0]]) > sig.target


def test_rsi_silent_while_it_stays_between_30_and_70():
    closes = [100 + (0.5 if i % 2 else -0.5) for i in range(200)]
    assert feed(make("rsi"), bars(closes)) == []


# ---- mean_reversion ---------------------------------------------------------------------------

def test_mean_reversion_fades_a_stretch_and_exits_near_the_mean():
    closes = [100.0 + (0.5 if i % 2 else -0.5) for i in range(40)] + [96.0] + [100.0] * 30
    out = feed(make("mean_reversion", {"period": 20}), bars(closes), Desk())
    c = pd.Series(closes)
    z = (c - c.rolling(20).mean()) / c.rolling(20).std(ddof=0)
    entry = first(z.to_numpy() <= -2.0)
    exit_ = first(np.abs(z.to_numpy()) <= 0.5, after=entry)
    assert summary(out) == [(entry, "entry", BUY, 1), (exit_, "exit", SELL, 1)]
    sd = c.rolling(20).std(ddof=0)[entry]
    mean = c.rolling(20).mean()[entry]
    sig = out[0][1]
    assert sig.stop_loss == paise(96.0 - 1.5 * sd)
    assert sig.target == paise(96.0 + (mean - 96.0))


def test_mean_reversion_silent_inside_the_band():
    closes = [100.0 + (0.5 if i % 2 else -0.5) for i in range(200)]
    assert feed(make("mean_reversion"), bars(closes)) == []


# ---- vwap_breakout ----------------------------------------------------------------------------

def test_vwap_breakout_on_volume_then_exit_back_across():
    closes = [100.0] * 25 + [102.0, 102.5, 99.0]
    volumes = [1000] * 25 + [2500, 1000, 1000]
    out = feed(make("vwap_breakout"), bars(closes, volumes=volumes), Desk())
    assert summary(out) == [(25, "entry", BUY, 1), (27, "exit", SELL, 1)]
    sig = out[0][1]
    typical = np.array([c for c in closes[:26]])  # high/low are symmetric around the close
    vwap = float((typical * np.array(volumes[:26])).sum() / sum(volumes[:26]))
    stop = (102.0 - vwap) / 102.0
    assert sig.stop_loss == paise(102.0 * (1 - stop)) and sig.target == paise(102.0 * (1 + 2 * stop))
    surge = 2500 / ((19 * 1000 + 2500) / 20)  # against the 20-bar average volume, this bar included
    assert sig.confidence == round(0.5 + 0.5 * (surge - 1.5) / 1.5, 4) and sig.confidence < 1


def test_vwap_breakout_ignores_a_break_on_ordinary_volume():
    closes = [100.0] * 25 + [102.0, 102.5]
    assert feed(make("vwap_breakout"), bars(closes)) == []


def test_vwap_resets_at_the_next_session():
    day1 = bars([100.0] * 25 + [110.0] * 5)
    day2 = bars([110.0] * 3, start=day1[0].start + 86400)
    s = make("vwap_breakout")
    out = feed(s, day1 + day2)
    # day 1's break on flat volume never fires; day 2 starts a fresh VWAP at 110: no break either
    assert out == [] and abs(s.instances[INFY].vwap.value - 110.0) < 1e-9


# ---- the API around them ----------------------------------------------------------------------

def test_snapshot_restore_resumes_the_position_without_re_entering():
    closes = ema_series()
    first_half = bars(closes[:25])
    s, desk = make("ema_crossover", {"fast": 3, "slow": 6, "quantity": 10}), Desk()
    assert [sig.intent for _, sig in feed(s, first_half, desk)] == ["entry"]
    snap = s.snapshot()
    again = make("ema_crossover", {"fast": 3, "slow": 6, "quantity": 10})
    again.restore(snap)
    for bar in first_half:  # the restarted worker re-seeds its indicators from history
        again.warm_up(bar)
    out = feed(again, bars(closes)[25:], desk)
    assert [(sig.intent, sig.transaction_type, sig.quantity) for _, sig in out] == [
        ("exit", SELL, 10), ("entry", SELL, 10)]


def test_exit_without_a_position_emits_nothing():
    s = make("rsi")
    assert s.instances[INFY].exit(0.5, "nothing held") is None
    assert s.instances[INFY].held() == 0 and s.positions() == {}
