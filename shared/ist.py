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
    return now(epoch_seconds).strftime("%Y-%m-%d")


def day_number(epoch_seconds: float) -> int:
    """The IST calendar day of an instant as a whole number (days since 1970-01-01 IST): cheap to compare."""
    return int((epoch_seconds + OFFSET_SECONDS) // DAY_SECONDS)


def midnight(epoch_seconds: int) -> int:
    """The epoch second at which the IST day holding ``epoch_seconds`` began."""
    return epoch_seconds - (epoch_seconds + OFFSET_SECONDS) % DAY_SECONDS


def stamp(epoch_seconds: float) -> str:
    """Kite's timestamp format, "yyyy-mm-dd hh:mm:ss" in IST."""
    return now(epoch_seconds).strftime("%Y-%m-%d %H:%M:%S")


def parse(text: str) -> float:
    """Kite's "yyyy-mm-dd hh:mm:ss" (IST) back to epoch seconds."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=IST).timestamp()
