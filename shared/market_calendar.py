"""The exchange's calendar: which days NSE/BSE trade, when a session ends, and the day an expiry moves
to when it falls on a holiday.

The holidays come from exchange-calendars' ``XBOM`` (BSE; NSE publishes the same trading holidays
in a joint circular each December), a maintained package updated when the exchanges announce the
next year. Past the last day it knows (``last_known_day``) only weekends are closed, and that is said
in the log once and by ``kta doctor``: upgrade the package when the next year's list is out.

A day's session is 09:15-15:30 IST unless the calendar knows a shortened one (``special_closes``: the
package's early closes, or given). Kite squares intraday (MIS) positions off before the close: equity
10 minutes before, derivatives 5 (``mis_square_off``). ``MarketCalendar.fixed(holidays)`` is a calendar
of weekends and the given days only (the paper broker's ``--holidays``, and tests that pin their days)."""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from functools import cached_property
from pathlib import Path

from shared.ist import IST

log = logging.getLogger("kta.calendar")
OPEN, CLOSE = time(9, 15), time(15, 30)  # the equity and F&O session, IST
MIS_SQUARE_OFF_BEFORE_CLOSE = {"equity": timedelta(minutes=10), "derivatives": timedelta(minutes=5)}
DERIVATIVE_EXCHANGES = frozenset({"NFO", "BFO", "CDS", "BCD", "MCX"})


class MarketCalendar:
    def __init__(self, name: str | None = "XBOM", extra_holidays: frozenset[date] = frozenset(),
                 special_closes: Mapping[date, time] | None = None) -> None:
        """``name``: the exchange-calendars calendar (None: weekends and ``extra_holidays`` only);
        ``special_closes``: shortened sessions (day -> close, IST) besides the calendar's own."""
        self.name = name
        self.extra_holidays = extra_holidays
        self.extra_closes = dict(special_closes or {})
        self._warned = False

    @classmethod
    def fixed(cls, holidays: frozenset[date] = frozenset(), special_closes: Mapping[date, time] | None = None
              ) -> MarketCalendar:
        """Weekends and ``holidays`` only, whatever the exchange announces."""
        return cls(None, holidays, special_closes)

    @cached_property
    def _known(self) -> tuple[frozenset[date], date, date, dict[date, time]]:
        if self.name is None:
            return frozenset(), date.min, date.max, {}
        doc = self._cached()
        if doc is None:
            doc = self._build()
            self._save(doc)
        return (frozenset(map(date.fromisoformat, doc["holidays"])), date.fromisoformat(doc["first"]),
                date.fromisoformat(doc["last"]), {date.fromisoformat(d): time.fromisoformat(t)
                                                  for d, t in doc["early_closes"].items()})

    def _build(self) -> dict:
        """The calendar from exchange-calendars (imports pandas and builds 20 years of sessions: seconds)."""
        import exchange_calendars

        cal = exchange_calendars.get_calendar(self.name)
        first, last = cal.first_session.date(), cal.last_session.date()
        sessions = {d.date() for d in cal.sessions}
        days = (first + timedelta(days=i) for i in range((last - first).days + 1))
        holidays = sorted(d.isoformat() for d in days if d.weekday() < 5 and d not in sessions)
        early = {d.date().isoformat(): cal.session_close(d).tz_convert(IST).time().isoformat()
                 for d in cal.early_closes}
        return {"version": self.version, "built": date.today().isoformat(), "holidays": holidays,
                "first": first.isoformat(), "last": last.isoformat(), "early_closes": early}

    def _cache_file(self) -> Path:
        return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kta" / f"calendar-{self.name}.json"

    def _cached(self) -> dict | None:
        """Today's copy of the calendar kept by an earlier process with the same package version: every kta
        process (and each paper broker a test starts) would otherwise pay the build."""
        try:
            doc = json.loads(self._cache_file().read_text())
        except (OSError, ValueError):
            return None
        fresh = doc.get("version") == self.version and doc.get("built") == date.today().isoformat()
        return doc if fresh else None

    def _save(self, doc: dict) -> None:
        path = self._cache_file()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f"{path.name}.{os.getpid()}.part")
            partial.write_text(json.dumps(doc))
            partial.replace(path)
        except OSError as e:  # a read-only home: every process builds its own
            log.info("exchange calendar not cached (%s)", e)

    def load(self) -> None:
        """Read the calendar now (the first build of a day imports exchange-calendars: seconds; later ones
        read the cached copy). An event loop runs this in a thread before its first question."""
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
        return importlib.metadata.version("exchange_calendars")

    def is_trading_day(self, d: date) -> bool:
        if d.weekday() >= 5 or d in self.extra_holidays:
            return False
        holidays, _, last, _ = self._known
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
        """The day's close: 15:30 IST, or earlier on a shortened session."""
        close = self.extra_closes.get(d) or self._known[3].get(d) or CLOSE
        return datetime.combine(d, close, IST)

    def session_open(self, d: date) -> datetime:
        return datetime.combine(d, OPEN, IST)

    def mis_square_off(self, d: date, exchange: str = "NSE") -> datetime:
        """When Kite starts squaring off the day's intraday (MIS) positions on ``exchange``."""
        segment = "derivatives" if exchange in DERIVATIVE_EXCHANGES else "equity"
        return self.session_close(d) - MIS_SQUARE_OFF_BEFORE_CLOSE[segment]

    def is_open(self, at: datetime) -> bool:
        """Within the day's session (09:15 to its close) on a trading day."""
        local = at.astimezone(IST)
        return self.is_trading_day(local.date()) and self.session_open(local.date()) <= local < self.session_close(
            local.date())

    def day_is_over(self, at: datetime) -> bool:
        """Past the day's close, or not a trading day at all (end-of-day work may run)."""
        local = at.astimezone(IST)
        return not self.is_trading_day(local.date()) or local >= self.session_close(local.date())


CALENDAR = MarketCalendar()
