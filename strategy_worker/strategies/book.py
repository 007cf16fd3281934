"""What one strategy instance holds and has asked for, as the broker says — never as it hoped.

``position`` changes only when a :class:`StrategyOutcome` arrives (its ``position`` field is the
execution worker's journaled net quantity, so applying it twice is harmless). A signal the
instance emitted is *in flight* from the moment it leaves until its outcome is final: refused,
rejected, cancelled, rolled back, or filled for its whole quantity (every leg of a group). While a
signal on an instrument is in flight nothing else may be sent on it, so a slow fill can never
become a second entry and an exit is always sized from what is really held.
"""

from __future__ import annotations

from typing import Any

import msgspec

from shared.messages import Signal, SignalGroup, StrategyOutcome

FINAL = frozenset({"refused", "rolled_back"})
FINAL_SINGLE = FINAL | {"rejected", "cancelled"}  # a group's failed leg is final only once rolled back
FILLS = frozenset({"filled"})


class Flight(msgspec.Struct, kw_only=True):
    signal_id: str
    intent: str  # entry | exit
    group: bool
    want: dict[int, int]  # token -> quantity asked
    filled: dict[int, int] = msgspec.field(default_factory=dict)
    sent_at: int = 0  # epoch ns
    trades: list[str] = msgspec.field(default_factory=list)  # fills counted (redelivery-proof)

    def complete(self) -> bool:
        return all(self.filled.get(t, 0) >= q for t, q in self.want.items())


def signed(side: Any, qty: int) -> int:
    return qty if str(getattr(side, "value", side)) == "BUY" else -qty


class Book:
    def __init__(self) -> None:
        self.position: dict[int, int] = {}  # traded token -> signed quantity (only from outcomes)
        self.average: dict[int, int] = {}  # traded token -> average price of that position, paise
        self.flights: dict[str, Flight] = {}  # signal id -> what is still in flight
        self.last_seq = 0

    # ---- what the instance may do -----------------------------------------------------------

    def busy(self, token: int) -> bool:
        """Something sent on ``token`` has no final outcome yet."""
        return any(token in f.want for f in self.flights.values())

    def held(self, token: int) -> int:
        return self.position.get(token, 0)

    # ---- what happened -----------------------------------------------------------------------

    def sent(self, sig: Signal | SignalGroup, now_ns: int) -> None:
        if isinstance(sig, SignalGroup):
            want: dict[int, int] = {}
            for leg in sig.legs:
                want[leg.instrument_token] = want.get(leg.instrument_token, 0) + leg.quantity
        else:
            want = {sig.instrument_token: sig.quantity}
        self.flights[sig.id] = Flight(signal_id=sig.id, intent=sig.intent, group=isinstance(sig, SignalGroup),
                                      want=want, sent_at=now_ns)

    def apply(self, o: StrategyOutcome) -> Flight | None:
        """Book one outcome. Returns the flight it finished, if any. A stale or repeated outcome
        (``seq`` not above the last one applied) changes nothing."""
        if o.seq:
            if o.seq <= self.last_seq:
                return None
            self.last_seq = o.seq
        if o.instrument_token and o.kind != "accepted" and o.kind != "refused":
            if o.position:
                self.position[o.instrument_token] = o.position
                self.average[o.instrument_token] = o.average_price
            else:
                self.position.pop(o.instrument_token, None)
                self.average.pop(o.instrument_token, None)
        key = o.signal_id or o.group_id  # a group's outcomes carry its id as group_id
        flight = self.flights.get(key) if key else None
        if flight is None:
            return None
        if o.kind in FILLS and o.instrument_token in flight.want and o.order_kind in ("", flight.intent):
            trade = o.trade_id or f"seq{o.seq}"
            if o.trade_id or o.seq:
                if trade in flight.trades:
                    return None
                flight.trades.append(trade)
            flight.filled[o.instrument_token] = flight.filled.get(o.instrument_token, 0) + o.quantity
        final = FINAL_SINGLE if not flight.group else FINAL
        if o.kind in final or flight.complete():
            return self.flights.pop(key)
        return None

    def forget(self, signal_id: str) -> None:
        """A signal refused before it left the worker: it never flew."""
        self.flights.pop(signal_id, None)

    # ---- restart -----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {"position": {str(k): v for k, v in self.position.items()},
                "average": {str(k): v for k, v in self.average.items()},
                "flights": [msgspec.to_builtins(f) for f in self.flights.values()], "last_seq": self.last_seq}

    def restore(self, snap: dict[str, Any]) -> None:
        self._replace({int(k): int(v) for k, v in snap.get("position", {}).items() if int(v)},
                      {int(k): int(v) for k, v in snap.get("average", {}).items()})
        flights = [msgspec.convert(f, Flight, strict=False) for f in snap.get("flights", [])]
        self.flights = {f.signal_id: f for f in flights}
        self.last_seq = int(snap.get("last_seq", 0))

    def adopt(self, positions: dict[int, tuple[int, int]], seq: int) -> None:
        """The journal's positions (token -> (quantity, average paise)) as of outcome ``seq``."""
        if seq and seq < self.last_seq:
            return  # outcomes newer than that answer were applied already
        self._replace({t: q for t, (q, _) in positions.items() if q}, {t: a for t, (q, a) in positions.items() if q})
        self.last_seq = max(self.last_seq, seq)

    def _replace(self, position: dict[int, int], average: dict[int, int]) -> None:
        # in place: a strategy's ``position`` is a read-only view of this very dict
        self.position.clear()
        self.position.update(position)
        self.average.clear()
        self.average.update(average)
