"""End of day (the original design's cleanup). At the session close (the exchange calendar's: 15:30 IST,
earlier on a shortened session), or on the first start of a new day for the days missed: summarise each finished trading day into ``daily_summaries``, archive its
journal rows to a JSON file, and start the new day's risk state (P&L baseline, order-rate counters).
An expiry day's report waits while kta still holds a contract that expired that day: the broker settles it
after the close (Kite drops it from the positions the next morning) and its settlement, booked on the expiry
day, belongs in that day's P&L (``SETTLEMENT_WAIT`` days at most)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

import msgspec
from msgspec import Struct

from execution_worker.journal import ACCEPTED, Journal
from shared.ist import IST
from shared.market_calendar import CALENDAR, MarketCalendar
from shared.trading.risk import RiskManager
from shared.trading.summary import ExecutionSummary, JournalSummary, execution_summary, journal_summary
from shared.messages import RiskState

SETTLEMENT_WAIT = 4  # calendar days a report waits for its day's expiry settlement (a long weekend and a holiday)


class DailySummary(Struct, kw_only=True):
    """What the gateway emails the user for one trading day. Money in paise."""

    user_id: str
    day: str
    realised_pnl: int
    signals: int
    signals_refused: int
    risk_events: int
    kill_switch: str
    journal: JournalSummary
    execution: ExecutionSummary


class EndOfDay:
    def __init__(self, user_id: str, journal: Journal, risk: RiskManager, *, archive_dir: str | Path | None = None,
                 clock: Callable[[], float] = time.time, calendar: MarketCalendar = CALENDAR,
                 unsettled: Callable[[str], bool] = lambda day: False) -> None:
        self.user_id = user_id
        self.unsettled = unsettled  # day -> kta still holds a contract that expired on it (not settled yet)
        self.journal = journal
        self.risk = risk
        self.archive_dir = Path(archive_dir) if archive_dir else None
        self.clock = clock
        self.calendar = calendar

    def due_days(self) -> list[str]:
        """Days with journal activity not yet summarised that are over (before today, or today after close)."""
        now = datetime.fromtimestamp(self.clock(), IST)
        today = now.date().isoformat()
        done = set(self.journal.summarised_days(self.user_id))
        return [d for d in self.journal.trading_days(self.user_id)
                if d not in done and (d < today or (d == today and now >= self.calendar.session_close(date.fromisoformat(d))))
                and not (self.unsettled(d) and (now.date() - date.fromisoformat(d)).days <= SETTLEMENT_WAIT)]

    def run(self) -> tuple[list[DailySummary], RiskState | None]:
        """Close every finished day (oldest first) and, on a new day, reset the day's risk state.
        Returns the summaries to publish and the RiskState if the kill switch changed."""
        summaries = [self.close_day(day) for day in self.due_days()]
        today = datetime.fromtimestamp(self.clock(), IST).date().isoformat()
        # forward only: a clock that has not caught up (a restart, before the exchange's time is heard) must not
        # take the kill switch back a day and reset the day's loss
        changed = self.risk.new_day(today) if today > self.risk.kill_switch.day else None
        return summaries, changed

    def close_day(self, day: str) -> DailySummary:
        trades = self.journal.trades(self.user_id, day)
        signals = self.journal.signals(self.user_id, day)
        journal = journal_summary(self.journal.trades_closing_on(self.user_id, day), day)
        summary = DailySummary(
            user_id=self.user_id, day=day, realised_pnl=journal.total_pnl,
            signals=len(signals), signals_refused=sum(s["decision"] != ACCEPTED for s in signals),
            risk_events=len(self.journal.risk_events(self.user_id, day)), kill_switch=self.risk.state,
            journal=journal, execution=execution_summary(self.journal.orders(self.user_id, day)),
        )
        if self.archive_dir is not None:
            self._archive(day, summary, trades, signals)
        self.journal.save_daily_summary(self.user_id, day, msgspec.to_builtins(summary))
        return summary

    def _archive(self, day: str, summary: DailySummary, trades: list[dict], signals: list[dict]) -> None:
        folder = self.archive_dir / self.user_id
        folder.mkdir(parents=True, exist_ok=True)
        record = {
            "summary": msgspec.to_builtins(summary), "signals": signals, "trades": trades,
            "orders": self.journal.orders(self.user_id, day), "groups": self.journal.groups(self.user_id, day),
            "risk_events": self.journal.risk_events(self.user_id, day),
        }
        partial = folder / f"{day}.json.part"
        partial.write_text(json.dumps(record, indent=1, sort_keys=True))
        partial.replace(folder / f"{day}.json")
