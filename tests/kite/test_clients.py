"""KiteClients, the one place a process gets a user's Kite client: long-lived, following the user's
broker session in KV (tomorrow's token and a new egress applied to the same client), one rate budget
per api_key, gone with the session."""

from __future__ import annotations

from shared.kite.budget import SharedBudget
from shared.kite.clients import KiteClients, NotConnected
from shared.broker_sessions import expire_session, put_session, vault_for
from tests.helpers import eventually, stack_settings
from tests.kite.kit import forward_to, http_server
from tests.simkit import login

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
