"""When a request reached the sim, as Kite's own front door sees it.

Kite counts a request against its per-second limits in the calendar second (of its clock) it arrives in. The
sim decides in its route guard, which runs behind the other requests of a burst on its one event loop (and
after the latency fault's delay): counted then, the tail of one second's burst lands in the next second with
that second's own requests — a 429 Kite would not give. This HTTP protocol stamps each request's scope with
the time its bytes were read, and the limiter counts it at that time."""

from __future__ import annotations

import time

from uvicorn.protocols.http.h11_impl import H11Protocol

ARRIVED = "kite_sim.arrived"  # scope key: wall-clock seconds when the request's bytes were read


class ArrivalStamped(H11Protocol):
    _read_at = 0.0

    def data_received(self, data: bytes) -> None:
        self._read_at = time.time()
        super().data_received(data)

    def handle_events(self) -> None:
        """A request parsed now (fresh bytes, or one pipelined behind the last answer) carries the time its bytes
        were read."""
        before = getattr(self, "scope", None)
        super().handle_events()
        scope = getattr(self, "scope", None)
        if scope is not None and scope is not before:
            scope[ARRIVED] = self._read_at


def arrived(scope) -> float | None:
    return scope.get(ARRIVED)
