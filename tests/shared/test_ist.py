"""shared/ist.py: the one IST of kta (zone, day, stamp) — the day turns at 18:30 UTC, never at UTC midnight."""

from datetime import datetime, timezone

from shared import ist


def utc(*args: int) -> int:
    return int(datetime(*args, tzinfo=timezone.utc).timestamp())


def test_the_ist_day_turns_at_1830_utc() -> None:
    before, after = utc(2026, 11, 24, 18, 29, 59), utc(2026, 11, 24, 18, 30, 0)
    assert ist.day(before) == "2026-11-24" and ist.day(after) == "2026-11-25"
    assert ist.day_number(after) == ist.day_number(before) + 1
    assert ist.midnight(before) == utc(2026, 11, 23, 18, 30) and ist.midnight(after) == after
    assert ist.now(after).utcoffset().total_seconds() == ist.OFFSET_SECONDS


def test_kite_stamps_round_trip() -> None:
    t = utc(2026, 11, 24, 3, 45, 7)  # 09:15:07 IST
    assert ist.stamp(t) == "2026-11-24 09:15:07"
    assert ist.parse(ist.stamp(t)) == t


def test_whole_second_stamps_and_days_are_datetimes_own() -> None:
    """stamp/day take an arithmetic path for int seconds (a backtest stamps every order event): it must agree
    with datetime's formatting everywhere, before 1970 and across day, month and year ends included."""
    import random

    rng = random.Random(20261201)
    for s in [0, -1, -19800, -19801, utc(2024, 12, 31, 18, 29, 59), utc(2024, 12, 31, 18, 30),
              *(rng.randint(-2 * 10**9, 4 * 10**9) for _ in range(20_000))]:
        assert ist.stamp(s) == datetime.fromtimestamp(s, ist.IST).strftime("%Y-%m-%d %H:%M:%S"), s
        assert ist.day(s) == datetime.fromtimestamp(s, ist.IST).strftime("%Y-%m-%d"), s
        assert ist.stamp(float(s)) == ist.stamp(s) and ist.day(float(s)) == ist.day(s), s
