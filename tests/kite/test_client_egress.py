"""Each user's order calls leave through their own egress (a local source address or a proxy: the 2026
static-IP rule) while reads go direct; an egress that cannot work refuses orders and sends nothing."""

from __future__ import annotations

import contextlib

import pytest

from shared import natsd
from shared.kite import errors
from shared.kite.client import KiteClient
from shared.kite.ratelimit import for_api_key
from tests.kite.kit import RecordingTransport, forward_to, http_server
from tests.simkit import login


async def test_egress_bound_to_a_local_source_address(sim):
    """Each user's orders can leave from their own address: bound to 127.0.0.2 an order reaches kite_sim,
    and a server that records its peers sees the order from 127.0.0.2 and the reads from the default."""
    token = login(sim)
    async with KiteClient(sim.api_key, token, root=sim.root, local_address="127.0.0.2",
                          rate_limiter=for_api_key(sim.api_key)) as kite:
        assert (await kite.profile()).user_id == "DEMO01"
        assert await kite.place_order("regular", "NSE", "INFY", "BUY", 1, "MIS", "LIMIT", price=1000.0)
    with http_server(lambda h: (200, "application/json", ORDER_OK)) as (root, seen):
        async with KiteClient("k", "t", root=root, local_address="127.0.0.2") as bound:
            await bound.profile()
            await bound.place_order("regular", "NSE", "INFY", "BUY", 1, "MIS", "LIMIT", price=1.0)
    assert [(peer, m) for peer, m, _ in seen] == [("127.0.0.1", "GET"), ("127.0.0.2", "POST")]


ORDER_OK = b'{"status":"success","data":{"order_id":"1","user_id":"AB1234"}}'


async def test_egress_through_a_proxy(sim):
    token = login(sim)
    with http_server(forward_to) as (proxy, seen):
        async with KiteClient(sim.api_key, token, root=sim.root, proxy=proxy,
                              rate_limiter=for_api_key(sim.api_key)) as kite:
            assert (await kite.profile()).user_id == "DEMO01"
            oid = await kite.place_order("regular", "NSE", "INFY", "BUY", 1, "MIS", "LIMIT", price=1000.0)
            with contextlib.suppress(errors.InputException):  # (the sim may have rejected it: still an order call)
                await kite.cancel_order("regular", oid)
    assert [(m, p) for _, m, p in seen] == [("POST", f"{sim.root}/orders/regular"),
                                            ("DELETE", f"{sim.root}/orders/regular/{oid}")]  # reads go direct
    with pytest.raises(ValueError):  # both at once would leave one of them silently unused
        KiteClient(sim.api_key, token, root=sim.root, proxy="http://127.0.0.1:9", local_address="127.0.0.2")


@pytest.mark.parametrize("egress", [{"local_address": "192.0.2.1"},  # TEST-NET-1: no interface has it
                                    {"proxy": "http://127.0.0.1:{closed}"}])
async def test_an_unavailable_egress_refuses_orders_and_sends_nothing(sim, egress):
    egress = {k: v.format(closed=natsd.free_port()) for k, v in egress.items()}
    wire = RecordingTransport()
    async with KiteClient(sim.api_key, login(sim), root=sim.root, transport=wire,
                          rate_limiter=for_api_key(sim.api_key), **egress) as kite:
        with pytest.raises(errors.EgressUnavailable) as e:
            await kite.place_order("regular", "NSE", "INFY", "BUY", 1, "MIS", "LIMIT", price=1000.0, tag="noegress")
        assert kite.egress.describe() in e.value.message and "Nothing was sent" in e.value.message
        assert (await kite.profile()).user_id == "DEMO01"  # the reads still work: the dashboard still sees
        assert not [o for o in await kite.orders() if o.tag == "noegress"]
    assert wire.count(method="POST") == 0
