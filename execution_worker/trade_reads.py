"""A desk's reads of the broker's trade book, shared (``SharedReads``): orders asking at once share one read
(the day's trade book when several wait, the order's own trades when one does), so fills coming together cost
one request of the api_key's shared 10/s, not one each."""

from __future__ import annotations

from collections.abc import Callable

from execution_worker.shared_reads import SharedReads
from shared.bus import Bus
from shared.kite.client import KiteClient
from shared.kite.models import Trade


class TradeReads:
    def __init__(self, client: Callable[[], KiteClient], bus: Bus, user_id: str) -> None:
        self._client = client
        self._reads: SharedReads[list[Trade]] = SharedReads(bus, f"trades:{user_id}", self._of_order, self._all)
        self.reading = self._reads.reading  # held through a read (tests hold it to let the broker's fills wait)

    async def of(self, order_id: str) -> list[Trade]:
        """The order's trades from the broker."""
        return (await self._reads.ask(order_id)).get(order_id, [])

    async def _of_order(self, order_id: str) -> dict[str, list[Trade]]:
        return _by_order(await self._client().order_trades(order_id))

    async def _all(self) -> dict[str, list[Trade]]:
        return _by_order(await self._client().trades())


def _by_order(trades: list[Trade]) -> dict[str, list[Trade]]:
    by_order: dict[str, list[Trade]] = {}
    for t in trades:
        by_order.setdefault(t.order_id, []).append(t)
    return by_order
