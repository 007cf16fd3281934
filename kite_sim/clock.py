"""The sim's market clock: exchange time (IST) running ``speed`` times faster than wall time.

Its trading days, and the session's hours, are the exchange calendar's (``shared.market_calendar``:
NSE/BSE holidays from exchange-calendars) unless the sim is given its own days (``--holidays``).

By default the clock starts at the session open (09:15 IST) of the sim date and walks through
trading sessions only: when a session closes at 15:30 the next trading day opens, so a demo or a test at
any hour of the day sees a live market, and at ``--speed 60`` a 5-minute bar forms in 5 wall seconds.

With ``hours=True`` (``--market-hours``) it is a calendar clock instead: it starts at the real time
(IST) and runs through nights, weekends and holidays, when the market is closed and prices stand at
the last close; regular orders are refused then and AMOs wait for the open. A session the calendar
shortens closes early in this mode (the sessions-only walk always runs the regular session).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta

from shared.ist import IST
from shared.market_calendar import CALENDAR, CLOSE, OPEN, MarketCalendar

OPEN_SECONDS = OPEN.hour * 3600 + OPEN.minute * 60
CLOSE_SECONDS = CLOSE.hour * 3600 + CLOSE.minute * 60
SESSION_SECONDS = CLOSE_SECONDS - OPEN_SECONDS  # 22,500


def session_open(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, OPEN.hour, OPEN.minute, tzinfo=IST)


class SimClock:
    def __init__(self, speed: float = 1.0, start_date: date | None = None, calendar: MarketCalendar = CALENDAR,
                 wall=time.time, hours: bool = False, start_at: datetime | None = None, elapsed: float = 0.0) -> None:
        self.speed = speed
        self.calendar = calendar
        self.hours = hours
        self._wall = wall
        self._frozen: float | None = None
        self._wall0 = wall() - elapsed / speed  # ``elapsed``: resume a snapshot's clock
        self.start_at = (start_at or datetime.fromtimestamp(wall(), IST)).astimezone(IST)
        if hours:
            start_date = self._last_session(self.start_at)[0]
        d = start_date or datetime.now(IST).date()
        self.start_date = d if calendar.is_trading_day(d) else calendar.previous_trading_day(d)

    def is_trading_day(self, d: date) -> bool:
        return self.calendar.is_trading_day(d)

    def add_trading_days(self, d: date, n: int) -> date:
        """The n-th trading day after ``d`` (n < 0: before; 0: ``d``)."""
        return self.calendar.next_trading_day(d, n)

    def advance(self, seconds: float) -> None:
        """Jump the market clock ``seconds`` (market time) ahead, as if that much time had passed."""
        self._wall0 -= seconds / self.speed

    def elapsed(self) -> float:
        """Market-clock seconds since the sim started (session seconds unless ``hours``)."""
        if self._frozen is not None:
            return self._frozen
        return (self._wall() - self._wall0) * self.speed

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """One moment for everything read inside: a margin priced twice in one answer (each order alone, then
        the basket together) must not see the market move between the two at 60x."""
        outer = self._frozen
        self._frozen = self.elapsed()
        try:
            yield
        finally:
            self._frozen = outer

    def _session_seconds(self, d: date) -> float:
        return min(float(SESSION_SECONDS), (self.calendar.session_close(d) - session_open(d)).total_seconds())

    def _last_session(self, at: datetime) -> tuple[date, float]:
        """The latest trading moment at or before ``at``: (trading date, seconds since its open)."""
        d = at.date()
        sec = (at - session_open(d)).total_seconds()
        if self.is_trading_day(d) and 0 <= sec <= self._session_seconds(d):
            return d, sec
        if not self.is_trading_day(d) or sec < 0:
            d = self.calendar.previous_trading_day(d)
        return d, self._session_seconds(d)

    def is_open(self) -> bool:
        return not self.hours or self.calendar.is_open(self.now_dt())

    def now(self) -> tuple[date, float]:
        """(trading date, seconds since that day's 09:15 open) of the market's current (or last) moment."""
        if self.hours:
            return self._last_session(self.now_dt())
        e = self.elapsed()
        days, sec = divmod(e, SESSION_SECONDS)
        return self.add_trading_days(self.start_date, int(days)), sec

    def now_dt(self) -> datetime:
        if self.hours:
            return self.start_at + timedelta(seconds=self.elapsed())
        d, sec = self.now()
        return session_open(d) + timedelta(seconds=sec)

    def epoch(self) -> int:
        return int(self.now_dt().timestamp())

    def today(self) -> date:
        return self.now()[0]

    def stamp(self) -> str:
        """Kite's REST timestamp format, IST."""
        return self.now_dt().strftime("%Y-%m-%d %H:%M:%S")
