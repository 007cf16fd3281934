import json
from datetime import date, time

from execution_worker.eod import EndOfDay
from execution_worker.journal import ACCEPTED, REFUSED
from shared.trading.risk import RiskManager
from shared.market_calendar import MarketCalendar
from shared.messages import KillSwitchState

from .kit import USER, Clock, journal, signal


def trade(j, n, side, qty, price, stamp):
    j.record_trade(USER, trade_id=f"T{n}", order_id=f"O{n}", exchange="NSE", tradingsymbol="INFY", instrument_token=1,
                   transaction_type=side, quantity=qty, price=price, fill_timestamp=stamp, strategy_id="s1")


def test_session_close_summarises_the_day_once_and_archives_it(tmp_path):
    clock = Clock("2026-11-24 15:00:00")
    j = journal(tmp_path, clock)
    eod = EndOfDay(USER, j, RiskManager(USER, None, j, clock), archive_dir=tmp_path / "archive", clock=clock)
    j.record_signal(signal("a"), ACCEPTED)
    j.record_signal(signal("b"), REFUSED, "too big", "POSITION_SIZE")
    trade(j, 1, "BUY", 10, 150000, "2026-11-24 10:00:00")
    trade(j, 2, "SELL", 10, 151000, "2026-11-24 11:00:00")
    assert eod.due_days() == []  # session still open
    clock.set("2026-11-24 15:30:00")
    summaries, changed = eod.run()
    [s] = summaries
    assert changed is None
    assert (s.day, s.realised_pnl, s.signals, s.signals_refused) == ("2026-11-24", 10_000, 2, 1)
    assert (s.journal.total_trades, s.journal.wins) == (1, 1)
    assert j.daily_summary(USER, "2026-11-24")["realised_pnl"] == 10_000
    archived = json.loads((tmp_path / "archive" / USER / "2026-11-24.json").read_text())
    assert len(archived["trades"]) == 2 and archived["summary"]["day"] == "2026-11-24"
    assert eod.run() == ([], None)


def test_first_start_of_a_new_day_closes_missed_days_and_resets_the_day_state(tmp_path):
    clock = Clock("2026-11-23 12:00:00")
    j = journal(tmp_path, clock)
    risk = RiskManager(USER, None, j, clock)
    trade(j, 1, "BUY", 5, 100000, "2026-11-23 10:00:00")
    risk.on_pnl(-45_000_00, 0, "positions")
    assert risk.state is KillSwitchState.REDUCING
    clock.set("2026-11-25 09:00:00")  # the worker was down on the 24th
    restarted = RiskManager(USER, None, j, clock)
    summaries, changed = EndOfDay(USER, j, restarted, clock=clock).run()
    assert [s.day for s in summaries] == ["2026-11-23"] and summaries[0].kill_switch == "REDUCING"
    assert changed.state is KillSwitchState.ACTIVE and restarted.kill_switch.day == "2026-11-25"
    assert j.kill_switch(USER)["day"] == "2026-11-25"


def test_the_day_closes_at_the_calendars_close_a_shortened_session_earlier(tmp_path):
    short = MarketCalendar.fixed(special_closes={date(2026, 11, 25): time(13, 0)})
    clock = Clock("2026-11-25 12:59:00")
    j = journal(tmp_path, clock)
    eod = EndOfDay(USER, j, RiskManager(USER, None, j, clock), clock=clock, calendar=short)
    trade(j, 1, "BUY", 10, 150000, "2026-11-25 10:00:00")
    assert eod.due_days() == []
    clock.set("2026-11-25 13:00:00")
    assert eod.due_days() == ["2026-11-25"]
    regular = EndOfDay(USER, j, RiskManager(USER, None, j, clock), clock=clock)  # the exchange calendar: 15:30
    assert regular.due_days() == []


def test_an_expiry_days_report_waits_for_the_settlement_of_what_expired_that_day(tmp_path):
    """Kite settles an expired contract after the close and drops it from the positions the next morning: the
    settlement, booked on the expiry day, is that day's P&L, so the report waits for it (and no longer than
    SETTLEMENT_WAIT days: a position never settled does not hold the report back for good)."""
    clock = Clock("2026-12-29 15:30:00")
    j = journal(tmp_path, clock)
    held = {"NIFTY26DECFUT": 65}
    eod = EndOfDay(USER, j, RiskManager(USER, None, j, clock), clock=clock,
                   unsettled=lambda day: bool(held) and day >= "2026-12-29")
    trade(j, 1, "BUY", 65, 2601950, "2026-12-29 09:57:19")
    assert eod.due_days() == []  # the close: the future still held, settled by the broker later
    clock.set("2026-12-30 09:15:05")
    assert eod.due_days() == []  # the next morning before the settlement is booked
    trade(j, 2, "SELL", 65, 2600000, "2026-12-29 15:30:00")  # the settlement, on the expiry day
    held.clear()
    [s] = eod.run()[0]
    assert (s.day, s.realised_pnl) == ("2026-12-29", -126_750)
    unsettled = EndOfDay(USER, journal(tmp_path / "b", clock), RiskManager(USER, None, j, clock), clock=clock,
                         unsettled=lambda day: True)
    trade(unsettled.journal, 1, "BUY", 65, 2601950, "2026-12-29 09:57:19")
    clock.set("2027-01-02 10:00:00")
    assert unsettled.due_days() == []
    clock.set("2027-01-03 10:00:00")  # more than four days on: the report goes out without it
    assert unsettled.due_days() == ["2026-12-29"]
