"""India Standard Time, the clock of the exchange and of Kite's timestamps: one zone, one day, one stamp.

Every IST computation in kta goes through here: the zone (``IST``), the calendar day of an instant
(``day``, ``day_number``, ``midnight``) and Kite's timestamp text (``stamp``, ``parse``)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

OFFSET_SECONDS = 19800  # IST is UTC+05:30, all year (no daylight saving)
IST = timezone(timedelta(seconds=OFFSET_SECONDS))
DAY_SECONDS = 86400


def now(epoch_seconds: float) -> datetime:
    return datetime.fromtimestamp(epoch_seconds, IST)


def day(epoch_seconds: float) -> str:
    """The IST calendar day (yyyy-mm-dd) of an instant."""
    if type(epoch_seconds) is int:
        return _day_text(midnight(epoch_seconds))
    return now(epoch_seconds).strftime("%Y-%m-%d")


def day_number(epoch_seconds: float) -> int:
    """The IST calendar day of an instant as a whole number (days since 1970-01-01 IST): cheap to compare."""
    return int((epoch_seconds + OFFSET_SECONDS) // DAY_SECONDS)


def midnight(epoch_seconds: int) -> int:
    """The epoch second at which the IST day holding ``epoch_seconds`` began."""
    return epoch_seconds - (epoch_seconds + OFFSET_SECONDS) % DAY_SECONDS


def stamp(epoch_seconds: float) -> str:
    """Kite's timestamp format, "yyyy-mm-dd hh:mm:ss" in IST."""
    global _LAST
    if type(epoch_seconds) is int:  # whole seconds (a backtest's clock, every order event): no strftime
        last = _LAST
        if last[0] == epoch_seconds:  # the events of one instant ask in a row
            return last[1]
        sec = (epoch_seconds + OFFSET_SECONDS) % DAY_SECONDS
        text = f"{_day_text(epoch_seconds - sec)} {sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}"
        _LAST = (epoch_seconds, text)
        return text
    return now(epoch_seconds).strftime("%Y-%m-%d %H:%M:%S")


_DAYS: dict[int, str] = {}  # IST midnight -> its yyyy-mm-dd (one entry per day seen)
_LAST: tuple[int | None, str] = (None, "")  # the last whole second stamped (one tuple: read whole by any thread)


def _day_text(midnight_s: int) -> str:
    text = _DAYS.get(midnight_s)
    if text is None:
        text = _DAYS[midnight_s] = now(midnight_s).strftime("%Y-%m-%d")
    return text


def parse(text: str) -> float:
    """Kite's "yyyy-mm-dd hh:mm:ss" (IST) back to epoch seconds."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=IST).timestamp()
