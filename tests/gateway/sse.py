"""Reading a gateway event stream in a test, with httpx-sse: events as (id, event, data) tuples in a
queue, filled by a background task for the block's duration."""

from __future__ import annotations

import asyncio
import contextlib

import httpx
from httpx_sse import SSEError, aconnect_sse

COMMENT = ("", ":", "")  # kta's "connected" and heartbeat comments (sent with an empty data line)


class SSE:
    """``async with SSE(client, "/sse") as sse``: entered once the gateway said "connected" (the user's
    subscriptions are in place from then on). ``next`` returns the next item (comments as ``COMMENT``,
    ``None`` when the stream ended); ``next_event`` skips comments."""

    def __init__(self, client: httpx.AsyncClient, path: str, headers: dict | None = None) -> None:
        self.client, self.path, self.headers = client, path, headers or {}
        self.queue: asyncio.Queue = asyncio.Queue()
        self.task: asyncio.Task | None = None
        self.status = 0

    async def __aenter__(self) -> "SSE":
        self.task = asyncio.create_task(self._read())
        first = await self.next(10)
        assert first == COMMENT, (self.status, first)
        return self

    async def __aexit__(self, *exc) -> None:
        self.task.cancel()
        with contextlib.suppress(BaseException):
            await self.task

    async def _read(self) -> None:
        try:
            async with aconnect_sse(self.client, "GET", self.path, headers=self.headers) as source:
                self.status = source.response.status_code
                async for ev in source.aiter_sse():
                    named = ev.event != "message" or ev.data  # kta names every event it sends
                    await self.queue.put((ev.id, ev.event, ev.data) if named else COMMENT)
        except SSEError:
            pass  # not an event stream (a refusal): nothing to read
        finally:
            await self.queue.put(None)

    async def next(self, timeout: float = 10) -> tuple | None:
        return await asyncio.wait_for(self.queue.get(), timeout)

    async def next_event(self, timeout: float = 10) -> tuple | None:
        while True:
            item = await self.next(timeout)
            if item != COMMENT:
                return item
