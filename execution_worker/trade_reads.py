"""A desk's reads of the broker's trade book, shared: orders asking at once share one read (the day's trade
book when several wait, the order's own trades when one does), so fills coming together cost one request of
the api_key's shared 10/s, not one each. A read always starts after the ask."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from shared.bus import Bus
from shared.kite.client import KiteClient
from shared.kite.models import Trade


class TradeReads:
    def __init__(self, client: Callable[[], KiteClient], bus: Bus, user_id: str) -> None:
        self._client, self._bus, self._user_id = client, bus, user_id
        self._wanted: set[str] = set()  # order ids waiting for the next read
        self._read: asyncio.Future | None = None
        self.reading = asyncio.Lock()  # held through a read: asks arriving meanwhile join the next one

    async def of(self, order_id: str) -> list[Trade]:
        """The order's trades from the broker."""
        self._wanted.add(order_id)
        if self._read is None:
            self._read = asyncio.get_running_loop().create_future()
            self._bus.spawn(self._read_trades(), name=f"trades:{self._user_id}")
        return (await asyncio.shield(self._read)).get(order_id, [])

    async def _read_trades(self) -> None:
        async with self.reading:
            read, wanted = self._read, self._wanted
            self._read, self._wanted = None, set()
            try:
                if len(wanted) == 1:
                    (only,) = wanted
                    trades = await self._client().order_trades(only)
                else:
                    trades = await self._client().trades()
            except asyncio.CancelledError:
                read.cancel()
                raise
            except Exception as e:  # noqa: BLE001 - every asker sees the broker's error
                read.set_exception(e)
                read.exception()  # retrieved: an asker that was cancelled leaves no warning behind
                return
            by_order: dict[str, list[Trade]] = {}
            for t in trades:
                by_order.setdefault(t.order_id, []).append(t)
            read.set_result(by_order)
