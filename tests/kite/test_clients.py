"""KiteClients, the one place a process gets a user's Kite client: long-lived, following the user's
broker session in KV (tomorrow's token and a new egress applied to the same client), one rate budget
per api_key, gone with the session."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from shared.kite import errors
from shared.kite.budget import SharedBudget
from shared.kite.clients import KiteClients, NotConnected
from shared.broker_sessions import expire_session, put_session, vault_for
from tests.helpers import eventually, stack_settings
from tests.kite.kit import forward_to, http_server
from tests.simkit import login

LTP = "GET /quote/ltp"
ORDER_OK = b'{"status":"success","data":{"order_id":"1"}}'


async def test_a_users_client_is_kept_and_follows_the_session(bus, sim, tmp_path):
    settings = stack_settings(bus.nc.connected_url.geturl(), tmp_path / "var", sim)
    vault = vault_for(settings)
    await put_session(bus, vault, "DEMO01", sim.api_key, login(sim))
    await put_session(bus, vault, "DEMO02", sim.api_key, login(sim, "DEMO02", "demo2"))
    clients = KiteClients(bus, settings)
    try:
        one = await clients.client("DEMO01")
        assert await clients.client("DEMO01") is one and (await one.profile()).user_id == "DEMO01"
        two = await clients.client("DEMO02")
        assert two is not one and isinstance(one.limiter, SharedBudget) and one.limiter is two.limiter  # one key

        tomorrow = login(sim)  # the next morning's login, with a static-IP egress set meanwhile
        await put_session(bus, vault, "DEMO01", sim.api_key, tomorrow, egress_local_address="127.0.0.2")
        await eventually(lambda: one.access_token == tomorrow, what="the new token applied in place")
        assert one.egress.local_address == "127.0.0.2" and await clients.client("DEMO01") is one
        assert (await one.profile()).user_id == "DEMO01"

        await expire_session(bus, "DEMO01", "logged out")
        await eventually(lambda: "DEMO01" not in clients._clients, what="the client dropped with its session")
        try:
            await clients.client("DEMO01")
            raise AssertionError("a user without a session got a client")
        except NotConnected:
            pass
        assert await clients.client("DEMO02") is two
    finally:
        await clients.close()


async def test_each_users_orders_leave_through_their_own_egress(bus, tmp_path):
    """Two users, two exits: one bound to a source address, one through a proxy, as their sessions say."""
    with http_server(lambda h: (200, "application/json", ORDER_OK)) as (root, seen), \
            http_server(forward_to) as (proxy, via_proxy):
        settings = stack_settings(bus.nc.connected_url.geturl(), tmp_path / "var", kite_root=root)
        vault = vault_for(settings)
        await put_session(bus, vault, "AB1234", "k", "t1", egress_local_address="127.0.0.2")
        await put_session(bus, vault, "CD5678", "k", "t2", egress_proxy=proxy)
        clients = KiteClients(bus, settings)
        try:
            for user in ("AB1234", "CD5678"):
                kite = await clients.client(user)
                await kite.place_order("regular", "NSE", "INFY", "BUY", 1, "MIS", "LIMIT", price=1.0)
        finally:
            await clients.close()
    assert [peer for peer, _, _ in seen] == ["127.0.0.2", "127.0.0.1"]  # the second came through the proxy
    assert via_proxy == [("127.0.0.1", "POST", f"{root}/orders/regular")]


OTHER_APP = {"api_key": "kta-demo-2", "api_secret": "kta-demo-2-secret"}  # kite_sim's second app


async def test_calls_waiting_on_a_replaced_client_are_sent_through_the_new_one(bus, sim, tmp_path):
    """The user's session moves to another api_key while calls wait for their turn on the old client (Kite's quote
    limit, 1/s: three of four wait): the old client is closed, and each waiting call goes out through the new one,
    once. Before, each failed with httpx's RuntimeError "Cannot send a request, as the client has been closed"."""
    settings = stack_settings(bus.nc.connected_url.geturl(), tmp_path / "var", sim)
    vault = vault_for(settings)
    await put_session(bus, vault, "DEMO01", sim.api_key, login(sim))
    other = dataclasses.replace(sim, **OTHER_APP)
    clients = KiteClients(bus, settings)
    try:
        one = await clients.client("DEMO01")
        calls = [asyncio.ensure_future(one.ltp("NSE:INFY")) for _ in range(4)]
        await asyncio.wait(calls, return_when=asyncio.FIRST_COMPLETED)  # the first sent; the others wait their slot
        await put_session(bus, vault, "DEMO01", other.api_key, login(other))
        await eventually(lambda: one._http.is_closed, what="the old client closed")
        two = await clients.client("DEMO01")
        assert two is not one and one.successor is two
        answers = await asyncio.gather(*calls, return_exceptions=True)
        assert [type(a) for a in answers] == [dict] * 4, answers
        assert all(a["NSE:INFY"].last_price > 0 for a in answers)
        by_key = {key: sim.get("/sim/requests", params={"api_key": key}).json().get(LTP, 0)
                  for key in (sim.api_key, other.api_key)}
        assert by_key[other.api_key] >= 1 and sum(by_key.values()) == 4  # each sent once, the waiting ones anew
    finally:
        await clients.close()


async def test_a_call_on_a_client_whose_session_ended_fails_typed(bus, sim, tmp_path):
    """Gone with the session (no successor): a KiteError saying nothing was sent, not httpx's bare RuntimeError."""
    settings = stack_settings(bus.nc.connected_url.geturl(), tmp_path / "var", sim)
    await put_session(bus, vault_for(settings), "DEMO01", sim.api_key, login(sim))
    clients = KiteClients(bus, settings)
    try:
        one = await clients.client("DEMO01")
        await clients.drop("DEMO01")
        with pytest.raises(errors.ClientClosed, match="not sent"):
            await one.ltp("NSE:INFY")
    finally:
        await clients.close()
