"""The static-IP egress of a user's orders, set as a trader would (the API, the settings form), carried
into the Kite session and to the execution worker, shown as "orders leave from", and an egress that
cannot be used refusing the order by name with nothing sent to the broker."""

from __future__ import annotations

import re
from contextlib import aclosing

from gateway import users
from tests.gateway.conftest import connect_kite, login
from tests.helpers import eventually

INFY_BUY = {"exchange": "NSE", "tradingsymbol": "INFY", "transaction_type": "BUY", "quantity": 1, "product": "MIS",
            "order_type": "MARKET"}


async def test_an_egress_set_by_the_trader_carries_the_orders_and_an_unusable_one_refuses_them(stack, gw_sim):
    gw_sim.reset_faults()
    a, csrf = await login(stack)
    h = {"X-CSRF-Token": csrf}
    async with aclosing(a):
        assert (await a.get("/api/settings/egress")).json()["leaves_from"].startswith("this machine's default route")
        for body, field in (({"local_address": "not-an-ip"}, "local_address"), ({"proxy": "ftp://host:21"}, "proxy"),
                            ({"proxy": "http://127.0.0.1:3128", "local_address": "127.0.0.2"}, "proxy"),
                            ({"bogus": "1"}, "bogus")):
            r = await a.put("/api/settings/egress", headers=h, json=body)
            assert r.status_code == 400 and field in r.text, (body, r.text)

        r = await a.put("/api/settings/egress", headers=h, json={"local_address": "127.0.0.2"})
        assert r.status_code == 200 and r.json()["problem"] is None
        assert r.json()["applied_to_session"] is False  # not connected yet: the Kite login carries it
        assert (await connect_kite(a, gw_sim)).status_code == 303
        assert (await a.get("/api/status")).json()["broker"]["orders_leave_from"] == "source address 127.0.0.2"

        placed = await a.post("/api/orders", headers=h, json={**INFY_BUY, "client_id": "egress-ok-1"})
        assert placed.status_code == 201, placed.text
        (order,) = placed.json()["orders"]
        assert order["order_id"] and order["state"] != "FAILED"
        assert (await a.get("/api/execution/summary")).json()["orders_leave_from"] == "source address 127.0.0.2"

        r = await a.put("/api/settings/egress", headers=h, json={"local_address": "192.0.2.1"})  # no interface has it
        assert r.json()["applied_to_session"] is True and "not an address of this machine" in r.json()["problem"]
        await eventually(lambda: _leaves_from(a, "source address 192.0.2.1"), what="the worker's client following it")
        refused = await a.post("/api/orders", headers=h, json={**INFY_BUY, "client_id": "egress-down-1"})
        (order,) = refused.json()["orders"]
        assert order["state"] == "FAILED" and not order["order_id"]
        assert "EgressUnavailable" in order["message"] and "192.0.2.1" in order["message"]
        kite_orders = (await a.get("/api/orders", params={"limit": 200})).json()["items"]
        assert not [o for o in kite_orders if o.get("order_id") and o.get("tag") == order["tag"]]


async def _leaves_from(client, expected: str) -> bool:
    return (await client.get("/api/execution/summary")).json().get("orders_leave_from") == expected


async def test_the_settings_form_shows_where_orders_leave_from_and_names_a_bad_field(gateway, gw_settings):
    a, csrf = await login(gateway, "DEMO02", "demo2@kta.local")
    h = {"X-CSRF-Token": csrf}
    async with aclosing(a):
        page = (await a.get("/settings")).text
        assert 'id="egress"' in page and "Orders leave from <b>this machine&#39;s default route" in page

        r = await a.post("/ui/settings/egress", headers=h, data={"mode": "local", "local_address": "nope"})
        assert 'id="error-local_address"' in r.text and "is not an IP address" in r.text
        # a proxy or an address chosen with its field left empty is named, not saved as the default route
        for mode, field in (("proxy", "proxy"), ("local", "local_address")):
            r = await a.post("/ui/settings/egress", headers=h, data={"mode": mode, "proxy": "", "local_address": ""})
            assert f'id="error-{field}"' in r.text and 'id="egress-saved"' not in r.text, r.text
            assert f'<option value="{mode}" selected>' in r.text  # the trader's choice kept
        r = await a.post("/ui/settings/egress", headers=h, data={"mode": "vpn", "proxy": "http://127.0.0.1:9"})
        assert 'id="error-mode"' in r.text and 'id="egress-saved"' not in r.text
        r = await a.post("/ui/settings/egress", headers=h,
                         data={"mode": "proxy", "proxy": "http://trader:s3cret@127.0.0.1:9"})  # nothing listens
        assert 'id="egress-saved"' in r.text and "proxy http://127.0.0.1:9" in r.text and "s3cret" not in r.text
        assert 'id="egress-problem"' in r.text and "does not answer" in r.text
        stored = users.egress_of(gw_settings, users.get_user(gw_settings, "DEMO02"))
        assert stored.proxy == "http://trader:s3cret@127.0.0.1:9"  # kept whole, encrypted at rest
        assert "s3cret" not in str(users.database(gw_settings)["users"].get("DEMO02"))

        masked = re.search(r'id="egress-proxy" name="proxy" placeholder="[^"]*" value="([^"]*)"', r.text).group(1)
        assert masked == "http://trader:***@127.0.0.1:9"
        r = await a.post("/ui/settings/egress", headers=h, data={"mode": "proxy", "proxy": masked})  # saved unchanged
        assert users.egress_of(gw_settings, users.get_user(gw_settings, "DEMO02")).proxy == stored.proxy

        r = await a.post("/ui/settings/egress", headers=h, data={"mode": "none"})
        assert "Orders leave from <b>this machine&#39;s default route" in r.text
