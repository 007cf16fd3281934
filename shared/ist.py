"""India Standard Time, the clock of the exchange and of Kite's timestamps: one zone, one day, one stamp."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

IST = timezone(timedelta(hours=5, minutes=30))
OFFSET_SECONDS = 19800


def now(epoch_seconds: float) -> datetime:
    return datetime.fromtimestamp(epoch_seconds, IST)


def day(epoch_seconds: float) -> str:
    """The IST calendar day (yyyy-mm-dd) of an instant."""
    return now(epoch_seconds).strftime("%Y-%m-%d")


def stamp(epoch_seconds: float) -> str:
    """Kite's timestamp format, "yyyy-mm-dd hh:mm:ss" in IST."""
    return now(epoch_seconds).strftime("%Y-%m-%d %H:%M:%S")


def parse(text: str) -> float:
    """Kite's "yyyy-mm-dd hh:mm:ss" (IST) back to epoch seconds."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=IST).timestamp()
