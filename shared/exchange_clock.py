"""The exchange's clock as kta hears it: the trading day and the time of day that the kill switch's day,
the end-of-day report and kta's own MIS square-off follow.

The machine's clock is not the exchange's: a paper broker at ``--sim-speed 60`` walks a whole session in
six minutes and starts the next trading day while the machine is still on the first (once an end-of-day
report went out for 2026-12-01 while the sim traded 2026-12-02, and one at 20:48 IST by the machine while
the sim stood at 10:15). So this clock is set from the exchange's own timestamps as they arrive — ticks,
signals (their tick's time), order updates (relayed, or an order read back), a quote's time when nothing else
has been heard for a while — and runs on from the latest one at the machine's pace. It never runs backwards (a replayed message's old
stamp is ignored). Until it has heard anything it is the machine's clock (against the real Kite the two
agree). Rate limits (Kite's requests and orders per second and minute) are wall time and never use it."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from shared import ist

FRESH = 120.0  # exchange seconds a stamp may lag and still count as hearing it now (1 s late at 60x: 60 s)


class ExchangeClock:
    def __init__(self, wall: Callable[[], float] = time.time) -> None:
        self.wall = wall
        self.offset = 0.0  # the exchange's time minus the machine's, seconds
        self.heard_at: float | None = None  # machine time of the last stamp heard (None: nothing yet)

    def heard(self, exchange_epoch: float | None) -> None:
        """An exchange timestamp (epoch seconds) just received; 0 / None (a message without one) is ignored."""
        if not exchange_epoch:
            return
        wall = self.wall()
        offset = exchange_epoch - wall
        if self.heard_at is None or offset > self.offset:
            self.offset = offset
        if offset > self.offset - FRESH:  # not an old stamp (a replay, a queued message): the clock is current
            self.heard_at = wall

    def heard_stamp(self, text: str | None) -> None:
        """Kite's "yyyy-mm-dd hh:mm:ss" (IST) timestamp text."""
        if text:
            self.heard(ist.parse(text))

    @property
    def known(self) -> bool:
        """Set from the exchange at least once (before that it is the machine's clock)."""
        return self.heard_at is not None

    def quiet_for(self) -> float:
        """Machine seconds since the last stamp (infinite before the first)."""
        return float("inf") if self.heard_at is None else self.wall() - self.heard_at

    def now(self) -> float:
        return self.wall() + self.offset

    def now_dt(self) -> datetime:
        return ist.now(self.now())

    def day(self) -> str:
        return ist.day(self.now())
