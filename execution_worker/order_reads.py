"""A desk's read-backs of orders from the broker, shared: orders asking at once share one read (the day's
order book when several wait, the order's own history when one does), so a square-off waiting on twenty
orders costs one request a round of the api_key's shared 10/s, not twenty (it drew 429s). A read always
starts after the ask: an ask arriving while a read is in flight joins the next one."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from shared.bus import Bus
from shared.kite import errors
from shared.kite.client import KiteClient
from shared.kite.models import Order as KiteOrder


class OrderReads:
    def __init__(self, client: Callable[[], KiteClient], bus: Bus, user_id: str) -> None:
        self._client, self._bus, self._user_id = client, bus, user_id
        self._wanted: set[str] = set()  # order ids waiting for the next read
        self._read: asyncio.Future | None = None
        self.reading = asyncio.Lock()  # held through a read: asks arriving meanwhile join the next one

    async def of(self, order_id: str) -> KiteOrder | None:
        """The broker's latest view of the order; None when its book does not hold it (an order of a
        closed day). Raises the broker's error (a 429 outlasting the client's retries)."""
        self._wanted.add(order_id)
        if self._read is None:
            self._read = asyncio.get_running_loop().create_future()
            self._bus.spawn(self._read_orders(), name=f"orders:{self._user_id}")
        return (await asyncio.shield(self._read)).get(order_id)

    async def _read_orders(self) -> None:
        async with self.reading:
            read, wanted = self._read, self._wanted
            self._read, self._wanted = None, set()
            try:
                if len(wanted) == 1:
                    (only,) = wanted
                    try:
                        history = await self._client().order_history(only)
                    except errors.InputException:  # "Couldn't find that `order_id`"
                        history = []
                    views = history[-1:]
                else:
                    views = await self._client().orders()
            except asyncio.CancelledError:
                read.cancel()
                raise
            except Exception as e:  # noqa: BLE001 - every asker sees the broker's error
                read.set_exception(e)
                read.exception()  # retrieved: an asker that was cancelled leaves no warning behind
                return
            read.set_result({o.order_id: o for o in views})
