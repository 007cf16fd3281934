"""The exchange clock: the machine's until the exchange is heard, then the latest exchange stamp run on at
the machine's pace; an older stamp (a replayed message) never takes it back."""

from shared import ist
from shared.exchange_clock import ExchangeClock

MACHINE = ist.parse("2026-12-01 23:10:00")  # the machine, evening in IST


class Wall:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_the_machines_clock_until_the_exchange_is_heard_then_the_exchanges():
    wall = Wall(MACHINE)
    clock = ExchangeClock(wall)
    assert not clock.known and clock.day() == "2026-12-01" and clock.quiet_for() == float("inf")
    clock.heard(0)  # a message without a stamp says nothing
    assert not clock.known
    clock.heard_stamp("2026-12-02 10:15:00")  # a paper market a day ahead, mid-morning
    wall.t += 2
    assert clock.known and ist.stamp(int(clock.now())) == "2026-12-02 10:15:02" and clock.quiet_for() == 2
    assert clock.now_dt().hour == 10


def test_an_older_stamp_never_takes_it_back_nor_counts_as_hearing_the_exchange():
    wall = Wall(MACHINE)
    clock = ExchangeClock(wall)
    clock.heard_stamp("2026-12-02 15:29:00")
    wall.t += 20
    clock.heard_stamp("2026-12-01 15:29:00")  # yesterday's order update, redelivered
    assert ist.stamp(int(clock.now())) == "2026-12-02 15:29:20" and clock.quiet_for() == 20
    clock.heard_stamp("2026-12-02 15:31:00")  # a market running faster than the machine moves it on
    assert clock.day() == "2026-12-02" and ist.stamp(int(clock.now())) == "2026-12-02 15:31:00"
    clock.heard_stamp("2026-12-03 09:15:01")
    assert clock.day() == "2026-12-03" and clock.quiet_for() == 0


def test_a_tick_a_minute_behind_a_fast_market_still_counts_as_hearing_it():
    wall = Wall(MACHINE)
    clock = ExchangeClock(wall)
    clock.heard_stamp("2026-12-02 10:15:00")
    wall.t += 5
    clock.heard_stamp("2026-12-02 10:14:30")  # at 60x, a tick half a wall second late
    assert clock.quiet_for() == 0 and ist.stamp(int(clock.now())) == "2026-12-02 10:15:05"
