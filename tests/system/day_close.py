"""The scenario's day close (``scenario.py``): a trading session ends and the next opens while the strategies
trade on — the sim (with settlement) jumps to two minutes before kta's own MIS cutoff, kta must flatten its MIS
positions itself, then the sim jumps to just before its close, settles (NRML legs carried overnight) and opens
the next trading day."""

from __future__ import annotations

from datetime import time as dtime

from tests.system.invariants import Invariants

CUTOFF = (15, 15)  # kta's own MIS square-off (mis_square_off_at)
CLOSE_WAIT = 12.0  # wall seconds from kta's cutoff (12 sim minutes at 60x) its MIS square-off may take


class DayClose:
    """The session's day close, one step per sample: at ``at`` seconds the sim jumps to two minutes before kta's
    MIS cutoff; once kta has flattened its MIS positions (the strategies trading on: MIS entries refused, NRML
    ones not) the sim jumps to just before its close, settles and opens the next day. MIS still open
    ``CLOSE_WAIT`` s after the cutoff is a violation (the broker's square-off would have taken it)."""

    def __init__(self, sim, at: float) -> None:
        self.sim, self.at = sim, at
        self.phase = "day 1"
        self.first = self.second = ""
        self.cut = 0.0  # t when kta's cutoff passed
        self.started = 0.0  # t when the second day opened
        self.held = 0  # MIS positions at the broker two minutes before the cutoff

    def step(self, t: float, net: dict[tuple[str, str], int], inv: Invariants) -> None:
        if self.phase == "day 1" and t >= self.at:
            self.first, self.held = self.sim.trading_day(), len([k for k in net if k[1] == "MIS"])
            self.sim.advance_to(CUTOFF[0], CUTOFF[1] - 2)
            self.phase = "cutoff"
        elif self.phase == "cutoff" and self.sim.market_time().time() >= dtime(*CUTOFF, 30):
            self.phase, self.cut = "closing", t
        elif self.phase == "closing":
            mis = {k: q for k, q in net.items() if k[1] == "MIS"}
            if mis and t - self.cut < CLOSE_WAIT:
                return
            if mis:
                inv.fail(t, f"kta's own MIS square-off left {mis} open at the broker {t - self.cut:.0f} s after "
                            "its cutoff")
            self.sim.advance_to(15, 29, 50)
            self.phase = "rolling"
        elif self.phase == "rolling" and (day := self.sim.trading_day()) != self.first:
            self.phase, self.second, self.started = "day 2", day, t

    def over(self, t: float, seconds: float) -> bool:
        """The session is over: ``seconds`` passed, the second day open and traded in as long as planned."""
        return t >= seconds and self.phase == "day 2" and t - self.started >= seconds - self.at

    def line(self) -> str:
        return (f"{self.first} closed ({self.held} MIS positions 2 min before kta's cutoff), "
                f"{self.second} traded")
