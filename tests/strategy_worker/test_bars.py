"""Bars from ticks: exchange time, Kite's IST candle alignment, volume deltas, OI carried, gaps."""

from datetime import datetime

from shared.ist import IST
from shared.messages import Bar, Tick
from strategy_worker.bars import BarSeries, bar_start

OPEN = int(datetime(2026, 11, 24, 9, 15, tzinfo=IST).timestamp())
TOKEN = 408065


def tick(ts: int, price: float, volume: int = 0, oi: int = 0, received_at: int = 0) -> Tick:
    return Tick(TOKEN, "full", True, price, volume_traded=volume, oi=oi, exchange_timestamp=ts,
                received_at=received_at)


def test_bar_start_aligns_to_the_0915_open_in_ist():
    assert bar_start(OPEN, 300) == OPEN
    assert bar_start(OPEN + 299, 300) == OPEN
    assert bar_start(OPEN + 300, 300) == OPEN + 300
    assert bar_start(OPEN + 61, 60) == OPEN + 60
    assert bar_start(OPEN + 45 * 60 + 10, 3600) == OPEN  # 10:00 belongs to the 09:15 hourly candle
    assert bar_start(OPEN + 3600, 3600) == OPEN + 3600
    midnight = int(datetime(2026, 11, 24, tzinfo=IST).timestamp())
    assert bar_start(OPEN + 5000, 86400) == midnight


def test_ohlc_volume_deltas_and_oi_on_exchange_time():
    s = BarSeries(TOKEN, "minute")
    # received_at (wall time) is deliberately far from exchange time: only exchange time counts
    assert s.on_tick(tick(OPEN + 1, 100.0, volume=1000, oi=50, received_at=1)) is None
    assert s.on_tick(tick(OPEN + 20, 103.5, volume=1300)) is None
    assert s.on_tick(tick(OPEN + 40, 99.0, volume=1450, oi=60)) is None
    assert s.on_tick(tick(OPEN + 59, 101.0, volume=1500)) is None
    done = s.on_tick(tick(OPEN + 61, 102.0, volume=1700))
    # the first tick only sets the volume baseline; OI is carried when a tick has none
    assert done == Bar(TOKEN, "minute", OPEN, 100.0, 103.5, 99.0, 101.0, 500, 60, False)
    done = s.on_tick(tick(OPEN + 185, 104.0, volume=1750))
    assert done == Bar(TOKEN, "minute", OPEN + 60, 102.0, 102.0, 102.0, 102.0, 200, 0, False)
    assert [b.start for b in s.bars] == [OPEN, OPEN + 60]


def test_late_tick_for_a_closed_bar_is_ignored():
    s = BarSeries(TOKEN, "minute")
    s.on_tick(tick(OPEN + 5, 100.0))
    s.on_tick(tick(OPEN + 65, 101.0))
    assert s.on_tick(tick(OPEN + 30, 500.0)) is None
    done = s.on_tick(tick(OPEN + 125, 102.0))
    assert done.start == OPEN + 60 and done.high == 101.0


def test_a_gap_closes_the_open_bar_and_marks_the_next():
    s = BarSeries(TOKEN, "5minute")
    s.on_tick(tick(OPEN + 10, 100.0, volume=10))
    s.on_tick(tick(OPEN + 100, 101.0, volume=20))
    closed = s.on_gap()
    assert closed == Bar(TOKEN, "5minute", OPEN, 100.0, 101.0, 100.0, 101.0, 10, 0, False)
    # after the reconnect the cumulative volume restarts its baseline: no volume is invented for the gap
    assert s.on_tick(tick(OPEN + 700, 105.0, volume=900)) is None
    done = s.on_tick(tick(OPEN + 900, 106.0, volume=950))
    assert done == Bar(TOKEN, "5minute", OPEN + 600, 105.0, 105.0, 105.0, 105.0, 0, 0, True)
    nxt = s.on_tick(tick(OPEN + 1200, 107.0, volume=960))
    assert nxt.after_gap is False and nxt.volume == 50


def test_seeded_history_then_live_and_the_series_is_bounded():
    s = BarSeries(TOKEN, "minute", max_bars=10)
    s.seed([Bar(TOKEN, "minute", OPEN + 60 * i, 1, 1, 1, 1) for i in range(15)])
    assert len(s.bars) == 10 and s.bars[0].start == OPEN + 60 * 5
    assert s.on_tick(tick(OPEN + 60 * 14 + 5, 9.0)) is None  # the seeded last bar is complete
    s.on_tick(tick(OPEN + 60 * 15 + 5, 2.0))
    s.on_tick(tick(OPEN + 60 * 16 + 5, 3.0))
    assert len(s.bars) == 10 and s.bars[-1].close == 2.0 and s.bars[-1].start == OPEN + 60 * 15


def test_quote_ticks_without_exchange_time_join_the_bar_in_progress():
    s = BarSeries(TOKEN, "minute")
    s.on_tick(tick(OPEN + 10, 100.0))
    s.on_tick(Tick(TOKEN, "quote", True, 98.0, received_at=10**18))
    done = s.on_tick(tick(OPEN + 70, 99.0))
    assert done.low == 98.0 and done.close == 98.0 and done.start == OPEN
