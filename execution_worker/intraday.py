"""kta closes its own intraday (MIS) positions before the broker does.

Kite squares MIS positions off itself from 15:20 IST (equity; 15:25 derivatives) at the market, with a
charge per order, and a strategy whose position vanishes that way learns of it only when the positions
cross-check adopts it. So at ``mis_square_off_at`` on the exchange's clock (default 15:15; on a session the
exchange shortens, as much earlier as its close) kta refuses new MIS entries for the rest of the day, cancels
the working orders of its MIS positions (their stops and targets included) and flattens them through the
square-off path that waits for owed fills — the strategies hear it as fills of their own. If kta was down
then, the broker's square-off is adopted as before (crosscheck.py)."""

from __future__ import annotations

import logging
import time as wall
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING

from shared import messages as m
from shared.ist import IST
from shared.market_calendar import CALENDAR, CLOSE, MarketCalendar

if TYPE_CHECKING:
    from execution_worker.engine import Desk

log = logging.getLogger("kta.intraday")
MIS = "MIS"
RETRY_CAP = 30.0  # a square-off that left an MIS position open (refused, partly filled) is tried again after
# 1, 2, 4 ... s, at most this long: quickly (a paper market at 60x reaches the broker's square-off in 5 s) but
# never an order a second against a broker that keeps refusing


def parse_at(text: str) -> time | None:
    """The setting ("HH:MM", "" for off)."""
    return datetime.strptime(text, "%H:%M").time() if text else None


def cutoff(day, at: time, calendar: MarketCalendar = CALENDAR) -> datetime:
    """``at`` on ``day``, moved as much earlier as the exchange moved that day's close."""
    close = calendar.session_close(day)
    shortened = datetime.combine(day, CLOSE, IST) - close
    return datetime.combine(day, at, IST) - max(shortened, timedelta(0))


def past_cutoff(desk: Desk) -> bool:
    """The exchange's clock is at or past today's MIS cutoff (False when the setting is off, or before the
    exchange's time is known: the machine's evening is not a paper market's)."""
    if desk.mis_square_off_at is None or not desk.exchange.known:
        return False
    now = desk.exchange.now_dt()
    return now >= cutoff(now.date(), desk.mis_square_off_at)


def mis_entry(sig: m.Signal | m.SignalGroup) -> bool:
    if isinstance(sig, m.SignalGroup):
        return any(leg.product is m.Product.MIS for leg in sig.legs)
    return sig.product is m.Product.MIS


def refused_entry(desk: Desk, sig: m.Signal | m.SignalGroup) -> tuple[str, str] | None:
    if mis_entry(sig) and past_cutoff(desk):
        return "MIS_CUTOFF", (f"intraday (MIS) entries close at {desk.mis_square_off_at:%H:%M}: kta squares MIS "
                              "positions off then, before the broker's own square-off")
    return None


def square_off_due(desk: Desk) -> str:
    """Why kta must square its MIS book off now ("" when not): past the cutoff, an MIS position open or an MIS
    entry working, and no flatten of them already working (tried again with a backoff, ``RETRY_CAP``)."""
    if not past_cutoff(desk):
        return ""
    open_mis = [p for p in desk.tracker.positions() if p.quantity and (p.product or MIS) == MIS]
    working = [o for o in desk.book.working() if o.product == MIS and not o.is_protective]
    if not open_mis and not working:
        desk.mis_tries = 0
        return ""
    backoff = min(RETRY_CAP, 2.0 ** (desk.mis_tries - 1)) if desk.mis_tries else 0.0
    if any(o.kind == "flatten" for o in working) or wall.monotonic() - desk.mis_closed_at < backoff:
        return ""
    desk.mis_closed_at, desk.mis_tries = wall.monotonic(), desk.mis_tries + 1
    log.warning("MIS cutoff: %d position(s), %d working order(s) to close", len(open_mis), len(working),
                extra={"user_id": desk.user_id})
    return f"intraday (MIS) square-off at {desk.mis_square_off_at:%H:%M}, before the broker's"
