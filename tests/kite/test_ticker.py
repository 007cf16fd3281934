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


def ticker_for(root: str, events: list[tuple[str, dict]], connected: asyncio.Event, api_key: str = "kta-demo",
               token: str = "token") -> Ticker:
    async def on_event(kind: str, info: dict) -> None:
        events.append((kind, info))
        if kind in ("connected", "reconnected"):
            connected.set()

    async def ignore(_) -> None:
        return None

    return Ticker(api_key, token, root, on_ticks=ignore, on_order=ignore, on_event=on_event, max_delay=0.05)


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


async def test_kite_sims_fourth_connection_per_api_key_is_a_429_not_a_logout(sim):
    """Against kite_sim, which (like Kite) allows 3 WebSocket connections per api_key and refuses a 4th
    with 429: the 4th ticker says "too many connections" once, keeps its session, and connects as soon
    as one of the three closes."""
    from tests.helpers import eventually
    from tests.simkit import login

    token = login(sim)
    tickers, tasks, ups = [], [], []
    try:
        for _ in range(3):
            up = asyncio.Event()
            t = ticker_for(sim.ws_root, [], up, sim.api_key, token)
            tickers.append(t)
            ups.append(up)
            tasks.append(asyncio.create_task(t.run()))
            await asyncio.wait_for(up.wait(), 15)
        events: list[tuple[str, dict]] = []
        fourth_up = asyncio.Event()
        fourth = ticker_for(sim.ws_root, events, fourth_up, sim.api_key, token)
        tasks.append(asyncio.create_task(fourth.run()))
        await eventually(lambda: any(k == "alert" for k, _ in events), what="the fourth told it has no slot")
        assert not fourth_up.is_set() and [i["detail"] for k, i in events if k == "alert"] == [TOO_MANY_CONNECTIONS]
        await tickers[0].close()  # a slot frees: the fourth gets it, its session intact
        await asyncio.wait_for(fourth_up.wait(), 15)
        assert "token_expired" not in [k for k, _ in events]
        tickers.append(fourth)
    finally:
        for t in tickers:
            await t.close()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 15)

