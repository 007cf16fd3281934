"""The exchange's calendar: which days NSE/BSE trade, when a session ends, and the day an expiry moves
to when it falls on a holiday.

The holidays come from exchange-calendars' ``XBOM`` (BSE; NSE publishes the same trading holidays
in a joint circular each December), a maintained package updated when the exchanges announce the
next year. Past the last day it knows (``last_known_day``) only weekends are closed, and that is said
in the log once and by ``kta doctor``: upgrade the package when the next year's list is out."""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta
from functools import cached_property

from shared.ist import IST

log = logging.getLogger("kta.calendar")
OPEN, CLOSE = time(9, 15), time(15, 30)  # the equity and F&O session, IST


class MarketCalendar:
    def __init__(self, name: str = "XBOM", extra_holidays: frozenset[date] = frozenset()) -> None:
        self.name = name
        self.extra_holidays = extra_holidays
        self._warned = False

    @cached_property
    def _known(self) -> tuple[frozenset[date], date, date]:
        import exchange_calendars

        cal = exchange_calendars.get_calendar(self.name)
        first, last = cal.first_session.date(), cal.last_session.date()
        sessions = {d.date() for d in cal.sessions}
        holidays = frozenset(first + timedelta(days=i) for i in range((last - first).days + 1)
                             if (first + timedelta(days=i)).weekday() < 5
                             and first + timedelta(days=i) not in sessions)
        return holidays, first, last

    def load(self) -> None:
        """Read the calendar now (the first read imports exchange-calendars: seconds). An event loop runs
        this in a thread before its first question, so no question blocks the loop."""
        self._known  # noqa: B018 - the cached read is the point

    @property
    def holidays(self) -> frozenset[date]:
        """Weekday closures the calendar knows, plus the extra ones."""
        return self._known[0] | self.extra_holidays

    @property
    def last_known_day(self) -> date:
        return self._known[2]

    @property
    def version(self) -> str:
        import exchange_calendars

        return exchange_calendars.__version__

    def is_trading_day(self, d: date) -> bool:
        if d.weekday() >= 5 or d in self.extra_holidays:
            return False
        holidays, first, last = self._known
        if d > last and not self._warned:
            self._warned = True
            log.warning("the exchange calendar knows holidays only until %s: %s is treated as a trading day "
                        "(pip install -U exchange-calendars)", last, d)
        return d not in holidays

    def next_trading_day(self, d: date, n: int = 1) -> date:
        """The n-th trading day after ``d`` (n < 0: before)."""
        step = 1 if n >= 0 else -1
        for _ in range(abs(n)):
            d += timedelta(days=step)
            while not self.is_trading_day(d):
                d += timedelta(days=step)
        return d

    def previous_trading_day(self, d: date, n: int = 1) -> date:
        return self.next_trading_day(d, -n)

    def trading_days(self, start: date, end: date) -> list[date]:
        return [start + timedelta(days=i) for i in range((end - start).days + 1)
                if self.is_trading_day(start + timedelta(days=i))]

    def expiry_day(self, scheduled: date) -> date:
        """A contract whose expiry day is a holiday expires on the trading day before it (NSE and BSE)."""
        return scheduled if self.is_trading_day(scheduled) else self.previous_trading_day(scheduled)

    def session_close(self, d: date) -> datetime:
        return datetime.combine(d, CLOSE, IST)

    def session_open(self, d: date) -> datetime:
        return datetime.combine(d, OPEN, IST)

    def is_open(self, at: datetime) -> bool:
        """Within the day's session (09:15-15:30 IST) on a trading day."""
        local = at.astimezone(IST)
        return self.is_trading_day(local.date()) and OPEN <= local.time() < CLOSE

    def day_is_over(self, at: datetime) -> bool:
        """Past the day's close, or not a trading day at all (end-of-day work may run)."""
        local = at.astimezone(IST)
        return not self.is_trading_day(local.date()) or local.time() >= CLOSE


CALENDAR = MarketCalendar()
