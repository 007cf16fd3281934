"""How the ticker client reads a refused WebSocket upgrade: a 403 is a dead access token (the session
is given up), a 429 is Kite's "this api_key already has its 3 connections" (the session is fine: say
so once and keep retrying). A small WebSocket server on 127.0.0.1 stands in for Kite's upgrade."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from websockets.asyncio.server import serve

from shared.kite.ticker import TOO_MANY_CONNECTIONS, Ticker, TokenExpired


@contextlib.asynccontextmanager
async def refusing_upgrades(statuses: list[int]):
    """A ticker endpoint that answers the next upgrades with ``statuses``, then accepts."""

    def process_request(connection, request):
        if statuses:
            return connection.respond(statuses.pop(0), "refused\n")
        return None

    async def handler(ws) -> None:
        await ws.send(b"\x00")  # Kite's one-byte heartbeat
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0, process_request=process_request) as server:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"


def ticker_for(root: str, events: list[tuple[str, dict]], connected: asyncio.Event) -> Ticker:
    async def on_event(kind: str, info: dict) -> None:
        events.append((kind, info))
        if kind in ("connected", "reconnected"):
            connected.set()

    async def ignore(_) -> None:
        return None

    return Ticker("kta-demo", "token", root, on_ticks=ignore, on_order=ignore, on_event=on_event, max_delay=0.05)


async def test_a_429_is_too_many_connections_alerted_once_and_retried_until_a_slot_frees():
    events: list[tuple[str, dict]] = []
    connected = asyncio.Event()
    async with refusing_upgrades([429, 429, 429]) as root:
        ticker = ticker_for(root, events, connected)
        task = asyncio.create_task(ticker.run())
        await asyncio.wait_for(connected.wait(), 15)
        await ticker.close()
        await asyncio.wait_for(task, 15)  # returns normally: no TokenExpired
    kinds = [k for k, _ in events]
    assert "token_expired" not in kinds
    alerts = [info["detail"] for k, info in events if k == "alert"]
    assert alerts == [TOO_MANY_CONNECTIONS]  # once for the streak, not once per retry
    assert kinds.count("reconnecting") == 3 and ticker.connects == 1


async def test_a_403_is_a_dead_token_and_is_not_retried():
    events: list[tuple[str, dict]] = []
    async with refusing_upgrades([403, 403]) as root:
        ticker = ticker_for(root, events, asyncio.Event())
        with pytest.raises(TokenExpired):
            await asyncio.wait_for(ticker.run(), 15)
    assert [k for k, _ in events] == ["token_expired"] and ticker.connects == 0
