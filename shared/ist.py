"""India Standard Time, the clock of the exchange and of Kite's timestamps: one zone, one day, one stamp.

Every IST computation in kta goes through here: the zone (``IST``), the calendar day of an instant
(``day``, ``day_number``, ``midnight``) and Kite's timestamp text (``stamp``, ``parse``)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

OFFSET_SECONDS = 19800  # IST is UTC+05:30, all year (no daylight saving)
IST = timezone(timedelta(seconds=OFFSET_SECONDS))
DAY_SECONDS = 86400


def now(epoch_seconds: float) -> datetime:
    return datetime.fromtimestamp(epoch_seconds, IST)


def day(epoch_seconds: float) -> str:
    """The IST calendar day (yyyy-mm-dd) of an instant."""
    whole = _whole(epoch_seconds)
    if whole is None:
        return now(epoch_seconds).strftime("%Y-%m-%d")
    return _day_text(midnight(whole))


def day_number(epoch_seconds: float) -> int:
    """The IST calendar day of an instant as a whole number (days since 1970-01-01 IST): cheap to compare."""
    return int((epoch_seconds + OFFSET_SECONDS) // DAY_SECONDS)


def midnight(epoch_seconds: int) -> int:
    """The epoch second at which the IST day holding ``epoch_seconds`` began."""
    return epoch_seconds - (epoch_seconds + OFFSET_SECONDS) % DAY_SECONDS


def stamp(epoch_seconds: float) -> str:
    """Kite's timestamp format, "yyyy-mm-dd hh:mm:ss" in IST."""
    global _LAST
    whole = _whole(epoch_seconds)  # the second it falls in: no strftime (every journal row, every order event)
    if whole is None:
        return now(epoch_seconds).strftime("%Y-%m-%d %H:%M:%S")
    last = _LAST
    if last[0] == whole:  # the events of one instant ask in a row
        return last[1]
    sec = (whole + OFFSET_SECONDS) % DAY_SECONDS
    text = f"{_day_text(whole - sec)} {sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}"
    _LAST = (whole, text)
    return text


def _whole(epoch_seconds: float) -> int | None:
    """The whole second datetime would show for ``epoch_seconds`` (it rounds to microseconds first), or
    None for the rare fraction that rounds up into the next second (datetime's own path then decides)."""
    if type(epoch_seconds) is int:
        return epoch_seconds
    whole = math.floor(epoch_seconds)
    return whole if epoch_seconds - whole < 0.999999 else None


_DAYS: dict[int, str] = {}  # IST midnight -> its yyyy-mm-dd (one entry per day seen)
_LAST: tuple[int | None, str] = (None, "")  # the last whole second stamped (one tuple: read whole by any thread)


def _day_text(midnight_s: int) -> str:
    text = _DAYS.get(midnight_s)
    if text is None:
        text = _DAYS[midnight_s] = now(midnight_s).strftime("%Y-%m-%d")
    return text


def parse(text: str) -> float:
    """Kite's "yyyy-mm-dd hh:mm:ss" (IST) back to epoch seconds. Every order update carries two: the
    day's midnight is looked up once, the time of day is arithmetic; any other shape goes to strptime
    (which raises ValueError for what is not a timestamp)."""
    midnight_s = _MIDNIGHTS.get(text[:10])
    if (midnight_s is not None and len(text) == 19 and text[10] == " " and text[13] == ":" and text[16] == ":"
            and text[11:13].isdigit() and text[14:16].isdigit() and text[17:19].isdigit()):
        hh, mm, ss = int(text[11:13]), int(text[14:16]), int(text[17:19])
        if hh < 24 and mm < 60 and ss < 60:
            return float(midnight_s + hh * 3600 + mm * 60 + ss)
    parsed = datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=IST)
    if len(text) == 19 and text[4] == "-" and text[7] == "-" and text[:4].isdigit() and text[5:7].isdigit() \
            and text[8:10].isdigit() and len(_MIDNIGHTS) < 10_000:
        _MIDNIGHTS[text[:10]] = int(parsed.replace(hour=0, minute=0, second=0).timestamp())
    return parsed.timestamp()


_MIDNIGHTS: dict[str, int] = {}  # "yyyy-mm-dd" -> the epoch second of its IST midnight (days parsed so far)
