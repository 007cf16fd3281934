"""Reads asked together travel together: a dashboard load asks the execution worker for positions, an
order page and a trade page within the same few turns of the event loop; each was a request and a
reply of its own (a NATS round trip, a task on each side, a reply encoded and decoded). ``ReadBatches``
holds a user's reads for one service for ``HOPS`` loop turns and sends them as one ``m.Reads``; the
worker's ``Bus.serve`` answers each read with the same handler as alone (``answer``), in one reply.

Only reads (``m.is_read``) are batched: they change nothing and carry no request id, so sharing a
request changes no outcome. A read alone is sent as itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from shared import messages as m

HOPS = 3  # loop turns a read waits for company: a page's panels ask theirs within two (nested gathers)

Send = Callable[[str, msgspec.Struct, float], Awaitable[m.Ok | m.Error]]


class ReadBatches:
    def __init__(self, send: Send) -> None:
        self._send = send  # Bus.request: (subject, command, timeout) -> reply
        self._open: dict[str, list[tuple[str, msgspec.Struct, float, asyncio.Future]]] = {}

    async def read(self, subject: str, cmd: msgspec.Struct, timeout: float) -> m.Ok | m.Error:
        """``cmd`` on ``subject`` (``kta.u.<user>.cmd.<service>.<verb>``), sent with the reads asked for
        the same user and service meanwhile; raises what ``Bus.request`` raises."""
        base = subject.rpartition(".")[0]
        batch = self._open.get(base)
        if batch is None:
            batch = self._open[base] = []
            asyncio.get_running_loop().call_soon(self._hop, base, HOPS - 1)
        future = asyncio.get_running_loop().create_future()
        batch.append((subject, cmd, timeout, future))
        return await future

    def _hop(self, base: str, left: int) -> None:
        if left:
            asyncio.get_running_loop().call_soon(self._hop, base, left - 1)
        else:
            # the futures hold the reference: whoever awaits them keeps the send alive
            asyncio.ensure_future(self._flush(self._open.pop(base)))

    async def _flush(self, batch: list[tuple[str, msgspec.Struct, float, asyncio.Future]]) -> None:
        try:
            if len(batch) == 1:
                subject, cmd, timeout, _ = batch[0]
                replies: list[Any] = [await self._send(subject, cmd, timeout)]
            else:
                base = batch[0][0].rpartition(".")[0]
                reads = m.Reads(commands=[m.encode(cmd) for _, cmd, _, _ in batch])
                reply = await self._send(f"{base}.reads", reads, max(t for _, _, t, _ in batch))
                if isinstance(reply, m.Error):  # the batch itself refused: each read is
                    replies = [reply] * len(batch)
                else:
                    replies = [m.reply_decoder.decode(raw) for raw in reply.data]
                    if len(replies) != len(batch):
                        replies = [m.Error(code="internal", service=reply.service,
                                           message=f"{len(replies)} answers to {len(batch)} reads")] * len(batch)
        except BaseException as e:  # each reader gets the failure as if it had asked alone
            for *_, future in batch:
                if not future.done():
                    future.set_exception(e)
            if not isinstance(e, Exception):
                raise
            return
        for (*_, future), reply in zip(batch, replies):
            if not future.done():  # a reader that gave up
                future.set_result(reply)


async def answer(reads: m.Reads, one: Callable[[bytes], Awaitable[m.Ok | m.Error]]) -> m.Ok:
    """The serving side: each read answered by ``one`` (decode + the service's handler, as alone), at once."""
    replies = await asyncio.gather(*(one(raw) for raw in reads.commands))
    return m.Ok(data=[m.encode(r) for r in replies])
