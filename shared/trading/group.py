"""The atomic placement of a multi-leg SignalGroup as a sequence of steps — pure: which leg goes next,
what a leg that did not fill means, and which orders undo what did. The execution worker carries the
steps out against the broker (``execution_worker/order_group.py``), a backtest against its fill model
(``strategy_worker/backtest/groups.py``), so both place a group the same way.

- **Entry**: one leg at a time in ``hedge.entry_order`` (hedges before the shorts they cover). A leg that
  does not fill completely (rejected, partly filled, timed out — the caller cancels what is left of it)
  ends the entry, and exactly what filled is closed again, short legs before their hedges
  (``hedge.closing_legs``, leg indexes from ``ROLLBACK_INDEX`` so their tags differ from the entry's).
  The group ends ``completed``, ``rolled_back`` (every closing leg filled: the book is as before) or
  ``needs_attention`` (a closing leg did not fill: positions must be checked).
- **Exit**: the legs (at the quantities risk decided; a leg with nothing to close is left out) in
  ``hedge.closing_order`` (shorts bought back first), each placed even when another fails — except the
  long legs of a short's option type (CE / PE) once that short's buy-back did not fill: they still cover
  it, and selling them would leave it naked (the soak: a condor's long call sold while its short call's
  buy-back worked on for 15 s). The same when the short stays open whatever this group does (``left_open``:
  risk decided less of its buy-back than it is short, e.g. an earlier exit's buy-back still working — soak
  seed 37: a second exit sold a condor's long put while the first exit's short-put buy-back worked on, 25 s
  naked). ``completed`` or ``needs_attention``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import msgspec

from shared.messages import Leg, SignalGroup
from shared.trading.hedge import closing_legs, closing_order, entry_order

ROLLBACK_INDEX = 50
FINAL = frozenset({"completed", "rolled_back", "needs_attention"})


@dataclass(frozen=True, slots=True)
class Step:
    leg: Leg
    index: int  # the leg's index in its orders' tags
    kind: str  # entry | exit | rollback


class GroupPlacement:
    def __init__(self, group: SignalGroup, quantities: Sequence[int] = (), left_open: Collection[str] = ()) -> None:
        """``quantities``: an exit's legs as risk decided them; ``left_open``: the option types (CE / PE) of the
        strategy's shorts that stay open after this exit's buy-backs — their long legs are kept."""
        self.group = group
        self.state = "placing"
        self.failure = ""  # the entry leg that failed, in words
        self._filled: list[tuple[Leg, int]] = []  # entry legs and what of each filled
        self._ok = True  # every exit / rollback leg so far filled
        self.kept: list[Leg] = []  # exit legs not placed: the hedges of a short still open
        if group.intent == "exit":
            decided = tuple(quantities) or tuple(leg.quantity for leg in group.legs)
            legs = [msgspec.structs.replace(leg, quantity=q) for leg, q in zip(group.legs, decided) if q]
            steps = [Step(leg, i, "exit") for i, leg in enumerate(closing_order(legs))]  # (tags as ever: kept or not)
            held = [s for s in steps if s.leg.transaction_type.value == "SELL" and s.leg.option_type in left_open]
            self.kept, self._ok = [s.leg for s in held], not held
            self._queue = [s for s in steps if s not in held]
        else:
            self._queue = [Step(leg, i, "entry") for i, leg in enumerate(entry_order(group.legs))]
        self.planned = tuple(self._queue)  # the legs as decided (a rollback's are added only if one fails)

    def next(self) -> Step | None:
        """The next leg to place and wait for; None once the group has ended (see ``state``)."""
        if self._queue:
            return self._queue.pop(0)
        if self.state == "placing":
            self._end()
        return None

    def done(self, step: Step, filled: int, ok: bool, failure: str = "") -> None:
        """What became of ``step``'s leg: ``filled`` units, ``ok`` when it filled completely;
        ``failure`` says why not (an entry leg's broker status and message)."""
        if step.kind != "entry":
            self._ok = self._ok and ok
            if not ok and step.kind == "exit" and step.leg.transaction_type.value == "BUY" and step.leg.option_type:
                covering = [s for s in self._queue if s.leg.transaction_type.value == "SELL"
                            and s.leg.option_type == step.leg.option_type]
                self._queue = [s for s in self._queue if s not in covering]
                self.kept += [s.leg for s in covering]
            return
        if filled:
            self._filled.append((step.leg, filled))
        if not ok:
            self.failure = failure or f"leg {step.leg.tradingsymbol}: no answer"
            back = closing_legs([msgspec.structs.replace(leg, quantity=q) for leg, q in self._filled])
            self._queue = [Step(leg, ROLLBACK_INDEX + k, "rollback") for k, leg in enumerate(back)]

    def _end(self) -> None:
        if self.group.intent == "exit":
            self.state = "completed" if self._ok else "needs_attention"
        elif not self.failure:
            self.state = "completed"
        else:
            self.state = "rolled_back" if self._ok else "needs_attention"

    @property
    def detail(self) -> str:
        """The journal's note on how the group ended ('' when it completed)."""
        if self.state == "completed":
            return ""
        if self.group.intent == "exit":
            kept = f"; kept {', '.join(leg.tradingsymbol for leg in self.kept)} covering a short still open" \
                if self.kept else ""
            return f"exit legs did not all fill{kept}"
        return self.failure if self._ok else f"{self.failure}; rollback incomplete: check positions"

    @property
    def code(self) -> str:
        """The code each leg's ``rolled_back`` outcome carries: NEEDS_ATTENTION when positions are left
        that the strategy did not ask for."""
        return "NEEDS_ATTENTION" if self.state == "needs_attention" else ""

    @property
    def reason(self) -> str:
        """Why the legs ended, as the strategy hears it."""
        if self.group.intent == "exit":
            return "exit legs did not all fill: check positions"
        return self.failure
