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


def test_fractional_instants_and_parsed_stamps_agree_with_datetime() -> None:
    """A float instant (the journal's clock) is stamped by its whole second unless its fraction rounds into
    the next one, and parse looks each day's midnight up once (every order update carries two stamps):
    both must agree with datetime everywhere, fractions at the second's edge included."""
    import random

    import pytest

    rng = random.Random(20261202)
    edges = (0.0, 1e-7, 0.5, 0.999999, 0.9999994999, 0.9999995, 0.99999999)
    for i in range(20_000):
        x = rng.randint(-2 * 10**9, 4 * 10**9) + (edges[i % len(edges)] if i % 2 else rng.random())
        dt = datetime.fromtimestamp(x, ist.IST)
        assert ist.stamp(x) == dt.strftime("%Y-%m-%d %H:%M:%S") and ist.day(x) == dt.strftime("%Y-%m-%d"), x
        text = dt.strftime("%Y-%m-%d %H:%M:%S")
        want = datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=ist.IST).timestamp()
        assert ist.parse(text) == want and ist.parse(text) == want, text  # the first asks strptime, the second not
    for bad in ("garbage", "2026-11-24 24:00:00", "2026-02-30 10:00:00", "2026-11-24 09:15:61", "2026-11-24T09:15:07"):
        with pytest.raises(ValueError):
            ist.parse(bad)
    assert ist.parse("2026-1-5 9:5:7") == datetime(2026, 1, 5, 9, 5, 7, tzinfo=ist.IST).timestamp()  # strptime's leniency
