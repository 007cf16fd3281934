"""kta's own MIS cutoff on the exchange's calendar: the configured time on a regular session, as much earlier
as the exchange shortens a session's close (Kite's square-off moves with it)."""

from datetime import date, time

from execution_worker.intraday import cutoff, parse_at
from shared.market_calendar import MarketCalendar

REGULAR, SHORT = date(2026, 12, 1), date(2026, 12, 2)
CALENDAR = MarketCalendar.fixed(special_closes={SHORT: time(13, 0)})


def test_the_cutoff_is_the_setting_on_a_regular_session_and_moves_with_a_shortened_close():
    at = parse_at("15:15")
    assert cutoff(REGULAR, at, CALENDAR).strftime("%Y-%m-%d %H:%M %z") == "2026-12-01 15:15 +0530"
    assert cutoff(SHORT, at, CALENDAR).strftime("%H:%M") == "12:45"  # the close 2.5 h early: so is kta's cutoff
    assert cutoff(SHORT, at, CALENDAR) < CALENDAR.mis_square_off(SHORT, "NSE")  # still before Kite's own


def test_an_empty_setting_is_off():
    assert parse_at("") is None and parse_at("09:30") == time(9, 30)
