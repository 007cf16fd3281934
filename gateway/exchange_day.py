"""The exchange's day as the gateway hears it, which its instrument list follows.

Kite's dump is the listing day's: a contract that expired at the exchange's last close is gone from the next
day's and new ones are in it. The gateway talks to no feed of its own, so its clock is set from the workers'
heartbeats (``kta.svc.<service>.status``): each carries the exchange's time as that worker hears it from the
broker — the ticker from ticks and order updates, the execution worker from those and its quotes
(``shared/exchange_clock.py``). Against the real Kite the two clocks agree; a paper broker at ``--sim-speed 60``
opens its next trading day long before the machine's next 08:35, and the gateway's search and option chain kept
offering the contracts that had expired at its close until then. Before any worker has heard the exchange this
is the machine's clock."""

from __future__ import annotations

from shared import messages as m
from shared import subjects
from shared.bus import Bus
from shared.exchange_clock import ExchangeClock


async def follow(bus: Bus, clock: ExchangeClock):
    """Set ``clock`` from every worker's heartbeat from now on; the subscription (unsubscribe to stop)."""

    async def heard(status: m.WorkerStatus, _msg) -> None:
        clock.heard(status.exchange_ts / 1e9)  # 0: that worker has heard nothing yet (ignored)

    return await bus.subscribe(subjects.service_status(subjects.ANY), m.WorkerStatus, heard)
