"""The JSON API against real workers and kite_sim: Kite connect through the sim's login page, the
trading calls, bad input named, two users kept apart, and a missing worker reported as 503."""

from __future__ import annotations

import json
import logging
import re
from contextlib import aclosing

import pytest


from shared.broker_sessions import get_session, put_session, vault_for
from tests.gateway.conftest import connect_kite, login
from tests.gateway.sse import SSE
from tests.helpers import wait_health

pytestmark = pytest.mark.slow(seconds=8)


async def test_trading_api_end_to_end(stack, gw_sim):
    a, csrf_a = await login(stack)
    b, csrf_b = await login(stack, "DEMO02", "demo2@kta.local")
    ha, hb = {"X-CSRF-Token": csrf_a}, {"X-CSRF-Token": csrf_b}
    async with aclosing(a), aclosing(b):
        assert (await a.get("/api/status")).json()["broker"]["state"] == "absent"
        assert (await a.get("/api/holdings")).status_code == 409  # Kite not connected yet
        r = await connect_kite(a, gw_sim)
        assert r.status_code == 303 and r.headers["location"] == "/"
        status = (await a.get("/api/status")).json()
        assert status["broker"]["state"] == "live" and status["broker"]["expires_at"] > 0
        assert status["workers"] == {"ticker": True, "strategy": True, "execution": True}
        assert status["csrf_token"] == csrf_a

        catalog = (await a.get("/api/strategies/catalog")).json()
        ema = next(c for c in catalog if c["name"] == "ema_crossover")
        assert {"name", "type", "default"} <= set(ema["params"][0]) or ema["params"]

        r = await a.post("/api/strategies/add", headers=ha,
                         json={"strategy": "ema_crossover", "params": {"fast": 5, "slow": 20}, "symbols": ["NSE:INFY"]})
        assert r.status_code == 200, r.text
        sid = r.json()["strategy_id"]
        assert [s["strategy_id"] for s in (await a.get("/api/strategies")).json()] == [sid]

        # bad input: named, 4xx, never 500, and any echo is escaped
        r = await a.post("/api/strategies/add", headers=ha, json={"strategy": "<script>alert(1)</script>"})
        assert 400 <= r.status_code < 500 and "<script>" not in r.text and "\\u003cscript" in r.text
        r = await a.post("/api/strategies/add", headers=ha, json={"strategy": "ema_crossover", "symbols": ["NSE:<b>NOPE"]})
        assert r.status_code == 400 and r.json()["field"] == "symbols" and "<b>" not in r.text
        r = await a.post("/api/strategies/add", headers=ha, json={"strategy": "ema_crossover", "params": {"fast": -3}})
        assert r.status_code == 400 and "fast" in r.text
        for body, field in (({"strategy": 5}, "strategy"), ({"params": {}}, "strategy"),
                            ({"strategy": "rsi", "bogus": 1}, "bogus"), ({"strategy": "rsi", "symbols": "INFY"}, "symbols")):
            r = await a.post("/api/strategies/add", headers=ha, json=body)
            assert r.status_code == 400 and field in r.text, (body, r.text)
        r = await a.post("/api/strategies/add", headers={**ha, "content-type": "application/json"}, content=b"{oops")
        assert r.status_code == 400
        assert (await a.get("/api/signals", params={"limit": 0})).status_code == 400
        assert "limit" in (await a.get("/api/signals", params={"limit": "x"})).text

        # the broker reads of A
        assert (await a.get("/api/profile")).json()["user_id"] == "DEMO01"
        assert (await a.get("/api/margins")).status_code == 200
        assert any(h["tradingsymbol"] == "INFY" for h in (await a.get("/api/holdings")).json())
        hits = (await a.get("/api/instruments", params={"q": "INFY"})).json()
        assert hits[0]["key"] == "NSE:INFY"
        assert any(h["kind"] == "index" for h in (await a.get("/api/instruments", params={"q": "NIFTY"})).json())
        chain = (await a.get("/api/option-chain", params={"underlying": "NIFTY"})).json()
        assert chain["strikes"] and chain["spot"] > 0 and any(s["ce"] and s["ce"]["ltp"] > 0 for s in chain["strikes"])
        assert chain["expiry"] >= chain["market_time"][:10]  # never an expiry the market has left behind
        assert any(s["ce"] and s["ce"]["bid"] and s["ce"]["ask"] >= s["ce"]["bid"] for s in chain["strikes"])
        r = await a.get("/api/option-chain", params={"underlying": "NIFTY", "expiry": "1999-01-01"})
        assert r.status_code == 400 and r.json()["field"] == "expiry"

        # live
        r = await a.post("/api/live/start", headers=ha, json={"symbols": ["NSE:INFY", "NIFTY 50"], "mode": "quote"})
        assert r.status_code == 200, r.text
        assert (await a.get("/api/status")).json()["live"] is True
        async with SSE(a, "/api/stream") as stream:  # ticks of the tokens A is live on, coalesced
            ev = await stream.next_event(20)
            while ev[1] != "ticks":
                ev = await stream.next_event(20)
            assert json.loads(ev[2])["instrument_token"] in r.json()["tokens"]
        for path in ("/api/orders", "/api/positions", "/api/signals", "/api/journal", "/api/journal/summary",
                     "/api/risk/summary", "/api/execution/summary"):
            assert (await a.get(path)).status_code == 200, path
        csv = await a.get("/api/journal/trades.csv")
        assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
        assert (await a.post("/api/risk/reset", headers=ha, json={"reason": "test"})).status_code == 200
        r = await a.post("/api/live/stop", headers=ha, json={})
        assert r.status_code == 200 and set(r.json()["stopped"]) == {"ticker", "strategy", "execution"}

        # B sees none of A's things and cannot touch them
        assert (await b.get("/api/strategies")).json() == []
        assert (await b.get("/api/holdings")).status_code == 409
        assert (await b.get("/api/status")).json()["broker"]["state"] == "absent"
        r = await b.post("/api/strategies/remove", headers=hb, json={"strategy_id": sid})
        assert r.status_code == 404 and r.json()["field"] == "strategy_id"
        assert (await a.post("/api/strategies/remove", headers=ha, json={"strategy_id": sid})).status_code == 200


async def test_an_expired_broker_session_is_shown_as_expired(gateway, gw_settings, bus):
    a, _ = await login(gateway)
    async with aclosing(a):
        await put_session(bus, vault_for(gw_settings), "DEMO01", "kta-demo", "stale-token", expires_at=1)
        broker = (await a.get("/api/status")).json()["broker"]
        assert broker == {"state": "expired", "expires_at": 1, "login_time": "",
                          "orders_leave_from": "this machine's default route (no static-IP egress set)"}
        r = await a.get("/api/margins")
        assert r.status_code == 409 and "connect" in r.json()["detail"]


async def test_kite_callback_refuses_another_users_kite_account(gateway, gw_sim):
    b, _ = await login(gateway, "DEMO02", "demo2@kta.local")
    async with aclosing(b):
        r = await connect_kite(b, gw_sim, kite_user="DEMO01", password="demo")
        assert r.status_code == 403 and "DEMO01" in r.text
        assert (await b.get("/api/status")).status_code in (200,)
        r = await b.get("/auth/kite/callback", params={"request_token": "forged", "status": "success"})
        assert r.status_code == 400 and "request_token" in r.text
        r = await b.get("/auth/kite/callback", params={"status": "cancelled"})
        assert r.status_code == 400 and "status" in r.text


async def test_a_missing_worker_is_a_503_in_words(gateway, bus):
    await wait_health(bus, "gateway")  # the gateway answers its health subject like every worker
    a, csrf = await login(gateway)
    async with aclosing(a):
        assert (await a.get("/schema/openapi.json")).json()["info"]["title"] == "kta gateway"
        r = await a.get("/api/strategies")
        assert r.status_code == 503 and re.search(r"strategy worker is not answering", r.json()["detail"])
        r = await a.post("/api/live/start", headers={"X-CSRF-Token": csrf}, json={"symbols": [408065]})
        assert r.status_code in (409, 503)


async def test_no_secret_reaches_the_logs(gateway, gw_sim, gw_settings, bus, caplog):
    caplog.set_level(logging.INFO)  # what a deployment logs (libraries' DEBUG traces print raw headers)
    caplog.set_level(logging.DEBUG, logger="kta")
    client = gateway.client()
    async with aclosing(client):
        r = await client.post("/auth/send-otp", json={"zerodha_id": "DEMO01", "email": "demo@kta.local"})
        code = r.json()["dev_otp"]
        r = await client.post("/auth/verify-otp", json={"zerodha_id": "DEMO01", "otp": code})
        csrf = r.json()["csrf_token"]
        token = client.cookies.get("kta_session")
        assert (await connect_kite(client, gw_sim)).status_code == 303
        live = await get_session(bus, vault_for(gw_settings), "DEMO01")
        assert live is not None
        await client.post("/auth/logout", json={}, headers={"X-CSRF-Token": csrf})
    text = caplog.text
    assert "logged in" in text  # the logs were captured
    for secret in (code, token, csrf, live.access_token, "kta-demo-secret"):
        assert secret not in text
