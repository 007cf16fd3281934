"""The sim's market clock: exchange time (IST) running ``speed`` times faster than wall time.

By default the clock starts at the session open (09:15 IST) of the sim date and walks through
trading sessions only: when a session closes at 15:30 the next trading day opens, so a demo or a test at
any hour of the day sees a live market, and at ``--speed 60`` a 5-minute bar forms in 5 wall seconds.

With ``hours=True`` (``--market-hours``) it is a calendar clock instead: it starts at the real time
(IST) and runs through nights, weekends and holidays, when the market is closed and prices stand at
the last close; regular orders are refused then and AMOs wait for the open.
"""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta

from shared.ist import IST

OPEN_SECONDS = 9 * 3600 + 15 * 60
CLOSE_SECONDS = 15 * 3600 + 30 * 60
SESSION_SECONDS = CLOSE_SECONDS - OPEN_SECONDS  # 22,500


def is_trading_day(d: date, holidays: frozenset[date] = frozenset()) -> bool:
    return d.weekday() < 5 and d not in holidays


def add_trading_days(d: date, n: int, holidays: frozenset[date] = frozenset()) -> date:
    step = 1 if n >= 0 else -1
    while n:
        d += timedelta(days=step)
        if is_trading_day(d, holidays):
            n -= step
    return d


def session_open(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, 9, 15, tzinfo=IST)


class SimClock:
    def __init__(self, speed: float = 1.0, start_date: date | None = None,
                 holidays: frozenset[date] = frozenset(), wall=time.time, hours: bool = False,
                 start_at: datetime | None = None, elapsed: float = 0.0) -> None:
        self.speed = speed
        self.holidays = holidays
        self.hours = hours
        self._wall = wall
        self._wall0 = wall() - elapsed / speed  # ``elapsed``: resume a snapshot's clock
        self.start_at = (start_at or datetime.fromtimestamp(wall(), IST)).astimezone(IST)
        if hours:
            start_date = self._last_session(self.start_at)[0]
        d = start_date or datetime.now(IST).date()
        while not is_trading_day(d, holidays):
            d -= timedelta(days=1)
        self.start_date = d

    def advance(self, seconds: float) -> None:
        """Jump the market clock ``seconds`` (market time) ahead, as if that much time had passed."""
        self._wall0 -= seconds / self.speed

    def elapsed(self) -> float:
        """Market-clock seconds since the sim started (session seconds unless ``hours``)."""
        return (self._wall() - self._wall0) * self.speed

    def _last_session(self, at: datetime) -> tuple[date, float]:
        """The latest trading moment at or before ``at``: (trading date, seconds since its open)."""
        d = at.date()
        sec = (at - session_open(d)).total_seconds()
        if is_trading_day(d, self.holidays) and 0 <= sec <= SESSION_SECONDS:
            return d, sec
        if is_trading_day(d, self.holidays) and sec < 0:
            d -= timedelta(days=1)
        while not is_trading_day(d, self.holidays):
            d -= timedelta(days=1)
        return d, float(SESSION_SECONDS)

    def is_open(self) -> bool:
        if not self.hours:
            return True
        at = self.now_dt()
        sec = (at - session_open(at.date())).total_seconds()
        return is_trading_day(at.date(), self.holidays) and 0 <= sec < SESSION_SECONDS

    def now(self) -> tuple[date, float]:
        """(trading date, seconds since that day's 09:15 open) of the market's current (or last) moment."""
        if self.hours:
            return self._last_session(self.now_dt())
        e = self.elapsed()
        days, sec = divmod(e, SESSION_SECONDS)
        return add_trading_days(self.start_date, int(days), self.holidays), sec

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
