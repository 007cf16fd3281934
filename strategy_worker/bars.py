"""Bars from ticks, by exchange time (so kite_sim's ``--speed`` works), aligned like Kite's candles.

Volume is the difference of the cumulative day volume between ticks; OI is carried. A reported feed
gap closes the bar in progress early and marks the next one ``after_gap`` — no bar silently spans
a gap. Each series keeps only its last ``max_bars`` bars."""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass

from shared import ist
from shared.messages import INTERVAL_SECONDS, Bar, Tick

SESSION_OPEN = 9 * 3600 + 15 * 60  # candles are aligned to the 09:15 open


def bar_start(ts: int, interval_s: int) -> int:
    """The open time of the candle containing exchange time ``ts`` (epoch s)."""
    if interval_s >= 86400:
        return ist.midnight(ts)
    day = ist.midnight(ts)
    since_open = ts - day - SESSION_OPEN
    return day + SESSION_OPEN + since_open // interval_s * interval_s


@dataclass(slots=True)
class _Open:
    start: int
    end: int  # the first second after the bar (its day's end at the latest)
    open: float
    high: float
    low: float
    close: float
    volume: int
    oi: int
    after_gap: bool


class BarSeries:
    """One (token, interval) series: ``on_tick`` returns the bar it completed, if any."""

    def __init__(self, token: int, interval: str, max_bars: int = 500) -> None:
        self.token = token
        self.interval = interval
        self.seconds = INTERVAL_SECONDS[interval]
        self.bars: deque[Bar] = deque(maxlen=max_bars)
        self._cur: _Open | None = None
        self._last_volume: int | None = None
        self._gap_pending = False
        self._exchange_clock = False
        self._last_exchange_ts = 0

    def seed(self, bars: list[Bar]) -> int:
        """Merge historical bars in: those not already held (by start) and older than the bar in
        progress, kept in time order — history fetched after live bars began (a late seed, a
        reconnect gap) fills in behind them. Returns how many were added."""
        have = {b.start for b in self.bars}
        limit = self._cur.start if self._cur is not None else None
        new = [b for b in bars if b.start not in have and (limit is None or b.start < limit)]
        if not new:
            return 0
        if not self.bars or new[0].start > self.bars[-1].start and all(
                x.start < y.start for x, y in itertools.pairwise(new)):
            self.bars.extend(new)
        else:
            merged = sorted([*self.bars, *new], key=lambda b: b.start)
            self.bars.clear()
            self.bars.extend(merged[-self.bars.maxlen:] if self.bars.maxlen else merged)
        return len(new)

    def on_tick(self, tick: Tick) -> Bar | None:
        # the time: exchange time; quote/ltp packets carry none, so they take the last exchange time
        # seen (they belong to the bar in progress), or the decode time if this series has never
        # seen one. A series that started on decode time switches to exchange time for good,
        # dropping the bar it had open on the other clock.
        ts = tick.exchange_timestamp or tick.last_trade_time
        if ts:
            if not self._exchange_clock:
                self._exchange_clock = True
                self._cur = None
            self._last_exchange_ts = ts
        elif self._exchange_clock:
            ts = self._last_exchange_ts
        else:
            ts = tick.received_at // 1_000_000_000
            if not ts:
                return None
        price = tick.last_price
        vol = 0
        traded = tick.volume_traded
        if traded:
            last = self._last_volume
            if last is not None and traded >= last:
                vol = traded - last
            self._last_volume = traded
        cur = self._cur
        if cur is not None and cur.start <= ts < cur.end:  # the common case: the bar in progress
            if price > cur.high:
                cur.high = price
            elif price < cur.low:
                cur.low = price
            cur.close = price
            cur.volume += vol
            if tick.oi:
                cur.oi = tick.oi
            return None
        start = bar_start(ts, self.seconds)
        done = None
        if cur is not None:
            if start < cur.start:
                return None  # a late tick for a bar already closed
            done = self._close()
        if self.bars and start <= self.bars[-1].start:
            return done  # a late tick for a bar already closed
        day_end = ist.midnight(ts) + ist.DAY_SECONDS
        self._cur = _Open(start, min(start + self.seconds, day_end), price, price, price, price, vol, tick.oi,
                          self._gap_pending)
        self._gap_pending = False
        return done

    def _close(self) -> Bar | None:
        c = self._cur
        self._cur = None
        if c is None:
            return None
        bar = Bar(self.token, self.interval, c.start, c.open, c.high, c.low, c.close, c.volume, c.oi, c.after_gap)
        self.bars.append(bar)
        return bar

    def on_gap(self, gap_start: int = 0) -> Bar | None:
        """The feed had a gap from ``gap_start`` (exchange epoch s; 0 if unknown) to now. A bar
        in progress whose span reaches into the gap is marked ``after_gap`` and goes on; a bar
        that ended before it is closed and the next bar is marked. Cumulative volume restarts its
        baseline, so volume traded unseen is never credited to one bar."""
        self._last_volume = None
        cur = self._cur
        if cur is not None and gap_start and cur.start + self.seconds > gap_start:
            cur.after_gap = True
            return None
        self._gap_pending = True
        return self._close()
