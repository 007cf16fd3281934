"""Faults on demand, set through ``/sim/faults`` (only with ``--admin``) or the sim's config file,
so the reliability tests of every worker can drive rejects, partial fills, 429s and dead sockets."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Faults:
    latency_ms: int = 0  # added to every REST response
    rate_limit_next: int = 0  # the next N REST calls answer 429
    reject_next: int = 0  # the next N orders are REJECTED with reject_reason
    reject_reason: str = "RMS:Margin Exceeds, Required:0, Available:0"
    partial_then_cancel_next: int = 0  # the next N orders fill about half, then the rest is cancelled
    hold_fills: bool = False  # orders rest OPEN without filling (tests of cancel / rollback / timeouts)
    drop_ws_every: float = 0.0  # close every ticker connection every N wall seconds (0 = never)
    malformed_next: int = 0  # the next N ticker frames are garbage
    poison_tokens: list = field(default_factory=list)  # these instruments' ticks cannot be built (a bad instrument)
    lose_answer_next: int = 0  # the next N calls matching lose_answer_on take effect, then the connection drops
    lose_answer_on: str = "POST /gtt/triggers"  # "METHOD /path" (lost_answers.py)
    lose_answer_effect: bool = True  # False: the connection drops before the call takes effect (nothing made)
    reject_gtt_next: int = 0  # the next N GTT creations and modifications are refused (InputException)
    reject_gtt_reason: str = "Trigger price is too close to the last price."
    counts: dict = field(default_factory=dict)

    def take_reject(self) -> str:
        return self.reject_reason if self._take("reject_next", "rejected") else ""

    def take_partial_then_cancel(self) -> bool:
        return self._take("partial_then_cancel_next", "partial_then_cancel")

    def take_rate_limit(self) -> bool:
        return self._take("rate_limit_next", "rate_limited")

    def take_lost_answer(self, method: str, path: str) -> bool:
        return f"{method} {path}" == self.lose_answer_on and self._take("lose_answer_next", "answer_lost")

    def take_gtt_reject(self) -> str:
        return self.reject_gtt_reason if self._take("reject_gtt_next", "gtt_rejected") else ""

    def take_malformed(self) -> bool:
        return self._take("malformed_next", "malformed")

    def _take(self, budget: str, counted: str) -> bool:
        """Spend one of the ``budget`` fault's remaining injections (counted as ``counted``)."""
        left = getattr(self, budget)
        if left <= 0:
            return False
        setattr(self, budget, left - 1)
        self._count(counted)
        return True

    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def update(self, changes: dict) -> None:
        for key, value in changes.items():
            if key == "counts" or not hasattr(self, key):
                raise KeyError(key)
            setattr(self, key, type(getattr(self, key))(value))

    def reset(self) -> None:
        """Every fault off and the counters at zero (in place: the broker and the ticker hold this object)."""
        for key, value in asdict(Faults()).items():
            setattr(self, key, value)

    def as_dict(self) -> dict:
        return asdict(self)
