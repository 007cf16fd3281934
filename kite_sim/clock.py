"""The sim's market clock: exchange time (IST) running ``speed`` times faster than wall time.

The clock starts at the session open (09:15 IST) of the sim date and walks through trading
sessions only: when a session closes at 15:30 the next trading day opens, so a demo or a test at any
hour of the day sees a live market, and at ``--speed 60`` a 5-minute bar forms in 5 wall seconds.
"""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta, timezone

IST = timezone(timedelta(hours=5, minutes=30))
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
                 holidays: frozenset[date] = frozenset(), wall=time.time) -> None:
        self.speed = speed
        self.holidays = holidays
        self._wall = wall
        self._wall0 = wall()
        d = start_date or datetime.now(IST).date()
        while not is_trading_day(d, holidays):
            d -= timedelta(days=1)
        self.start_date = d

    def elapsed(self) -> float:
        """Session seconds since the sim started."""
        return (self._wall() - self._wall0) * self.speed

    def now(self) -> tuple[date, float]:
        """(trading date, seconds since that day's 09:15 open)."""
        e = self.elapsed()
        days, sec = divmod(e, SESSION_SECONDS)
        return add_trading_days(self.start_date, int(days), self.holidays), sec

    def now_dt(self) -> datetime:
        d, sec = self.now()
        return session_open(d) + timedelta(seconds=sec)

    def epoch(self) -> int:
        return int(self.now_dt().timestamp())

    def today(self) -> date:
        return self.now()[0]

    def stamp(self) -> str:
        """Kite's REST timestamp format, IST."""
        return self.now_dt().strftime("%Y-%m-%d %H:%M:%S")
