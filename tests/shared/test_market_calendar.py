"""The exchange calendar kta trades by (exchange-calendars' XBOM): trading days and holidays, the expiry
that moves to the day before a holiday, the session's close, and a day past what the calendar knows."""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta

from shared.ist import IST
from shared.market_calendar import CALENDAR, MarketCalendar


def test_trading_days_skip_weekends_and_the_exchanges_holidays():
    assert CALENDAR.is_trading_day(date(2026, 12, 1))  # a Tuesday
    assert not CALENDAR.is_trading_day(date(2026, 11, 28))  # a Saturday
    for holiday in (date(2026, 1, 26), date(2026, 10, 2), date(2026, 12, 25)):  # Republic Day, Gandhi Jayanti, Christmas
        assert holiday.weekday() < 5 and not CALENDAR.is_trading_day(holiday)
    assert CALENDAR.next_trading_day(date(2026, 12, 24)) == date(2026, 12, 28)  # over Christmas and the weekend
    assert CALENDAR.previous_trading_day(date(2026, 1, 27)) == date(2026, 1, 23)  # back over Republic Day
    assert len(CALENDAR.trading_days(date(2026, 12, 21), date(2026, 12, 27))) == 4


def test_an_expiry_on_a_holiday_moves_to_the_trading_day_before():
    assert CALENDAR.expiry_day(date(2026, 12, 1)) == date(2026, 12, 1)  # a Tuesday that trades: unchanged
    assert CALENDAR.expiry_day(date(2026, 3, 31)) == date(2026, 3, 30)  # Tuesday 31 Mar 2026 is a holiday
    assert CALENDAR.expiry_day(date(2026, 11, 24)) == date(2026, 11, 23)


def test_the_session_and_the_end_of_the_day():
    day = date(2026, 12, 1)
    assert CALENDAR.session_close(day) == datetime(2026, 12, 1, 15, 30, tzinfo=IST)
    assert CALENDAR.is_open(datetime(2026, 12, 1, 9, 15, tzinfo=IST))
    assert not CALENDAR.is_open(datetime(2026, 12, 1, 15, 30, tzinfo=IST))
    assert not CALENDAR.is_open(datetime(2026, 10, 20, 11, 0, tzinfo=IST))  # a holiday
    assert CALENDAR.day_is_over(datetime(2026, 12, 1, 15, 31, tzinfo=IST))
    assert not CALENDAR.day_is_over(datetime(2026, 12, 1, 15, 29, tzinfo=IST))
    assert CALENDAR.day_is_over(datetime(2026, 10, 20, 11, 0, tzinfo=IST))


def test_a_day_past_the_calendar_is_a_weekday_trading_day_and_said_once(caplog):
    calendar = MarketCalendar()
    beyond = calendar.last_known_day + timedelta(days=30)
    while beyond.weekday() >= 5:
        beyond += timedelta(days=1)
    with caplog.at_level(logging.WARNING, "kta.calendar"):
        assert calendar.is_trading_day(beyond) and calendar.is_trading_day(beyond + timedelta(days=7))
    assert [r.message for r in caplog.records].count(caplog.records[0].message) == 1
    assert "pip install -U exchange-calendars" in caplog.records[0].message


def test_intraday_square_off_and_a_shortened_session_follow_the_calendar():
    day = date(2026, 12, 1)
    assert CALENDAR.mis_square_off(day, "NSE") == datetime(2026, 12, 1, 15, 20, tzinfo=IST)
    assert CALENDAR.mis_square_off(day, "NFO") == datetime(2026, 12, 1, 15, 25, tzinfo=IST)
    short = MarketCalendar.fixed(special_closes={day: time(13, 0)})
    assert short.session_close(day) == datetime(2026, 12, 1, 13, 0, tzinfo=IST)
    assert short.mis_square_off(day, "BSE") == datetime(2026, 12, 1, 12, 50, tzinfo=IST)
    assert short.is_open(datetime(2026, 12, 1, 12, 59, tzinfo=IST))
    assert not short.is_open(datetime(2026, 12, 1, 13, 0, tzinfo=IST)) and short.day_is_over(
        datetime(2026, 12, 1, 13, 0, tzinfo=IST))
    assert short.session_close(date(2026, 12, 2)).time() == time(15, 30)


def test_a_fixed_calendar_closes_weekends_and_its_own_days_only():
    fixed = MarketCalendar.fixed(frozenset({date(2026, 12, 2)}))
    assert fixed.is_trading_day(date(2026, 12, 25))  # the exchange's Christmas holiday is not one of its days
    assert not fixed.is_trading_day(date(2026, 12, 2)) and not fixed.is_trading_day(date(2026, 12, 5))
    assert fixed.next_trading_day(date(2026, 12, 1)) == date(2026, 12, 3)


def test_a_process_reads_the_days_calendar_an_earlier_one_cached(tmp_path, monkeypatch):
    """Building the calendar imports pandas and 20 years of sessions (seconds, 20 s on a loaded machine):
    each process (each paper broker a test starts) reads the copy of the day an earlier one kept instead."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    calendar = MarketCalendar()
    doc = {"version": calendar.version, "built": date.today().isoformat(), "holidays": ["2026-12-02"],
           "first": "2006-12-01", "last": "2026-12-31", "early_closes": {"2026-12-03": "13:00:00"}}
    calendar._save(doc)
    assert (tmp_path / "kta" / "calendar-XBOM.json").exists()
    assert not calendar.is_trading_day(date(2026, 12, 2)) and calendar.is_trading_day(date(2026, 12, 25))
    assert calendar.session_close(date(2026, 12, 3)).time() == time(13, 0)
    calendar._save({**doc, "version": "0.0"})  # another package version (or another day): built afresh
    assert MarketCalendar()._cached() is None
