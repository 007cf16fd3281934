"""A desk's read-backs of orders from the broker, shared (``SharedReads``): orders asking at once share one read
(the day's order book when several wait, the order's own history when one does), so a square-off waiting on
twenty orders costs one request a round of the api_key's shared 10/s, not twenty (it drew 429s)."""

from __future__ import annotations

from collections.abc import Callable

from execution_worker.shared_reads import SharedReads
from shared.bus import Bus
from shared.kite import errors
from shared.kite.client import KiteClient
from shared.kite.models import Order as KiteOrder


class OrderReads:
    def __init__(self, client: Callable[[], KiteClient], bus: Bus, user_id: str) -> None:
        self._client = client
        self._reads: SharedReads[KiteOrder] = SharedReads(bus, f"orders:{user_id}", self._of_order, self._all)

    async def of(self, order_id: str) -> KiteOrder | None:
        """The broker's latest view of the order; None when its book does not hold it (an order of a
        closed day). Raises the broker's error (a 429 outlasting the client's retries)."""
        return (await self._reads.ask(order_id)).get(order_id)

    async def _of_order(self, order_id: str) -> dict[str, KiteOrder]:
        try:
            history = await self._client().order_history(order_id)
        except errors.InputException:  # "Couldn't find that `order_id`"
            history = []
        return {o.order_id: o for o in history[-1:]}

    async def _all(self) -> dict[str, KiteOrder]:
        return {o.order_id: o for o in await self._client().orders()}
