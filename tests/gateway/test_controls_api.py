"""The operator's controls over HTTP (gateway under uvicorn, the execution worker, kite_sim): limits
read, validated (a 400 naming the field), saved and effective; the trader's own order through risk
(a refused stop named) and protection; its stop moved but never cancelled; Square off all; per-strategy
positions; Halt now."""

from __future__ import annotations

from contextlib import aclosing

from execution_worker.main import amain as execution_main
from shared.kite.client import KiteClient
from tests.gateway.conftest import connect_kite, forget_broker_sessions, login
from tests.helpers import eventually, running, wait_health
from tests.simkit import login as kite_login


async def test_operator_controls_over_http(gateway, gw_settings, gw_sim, bus):
    await forget_broker_sessions(bus)
    kite = KiteClient(gw_sim.api_key, kite_login(gw_sim), root=gw_sim.root)
    async with running(execution_main, gw_settings), aclosing(kite):
        await wait_health(bus, "execution")
        a, csrf = await login(gateway)
        h = {"X-CSRF-Token": csrf}
        async with aclosing(a):
            await connect_kite(a, gw_sim)
            limits = (await a.get("/api/risk/limits")).json()
            assert limits["custom"] is False and limits["limits"]["max_daily_loss"] == limits["defaults"]["max_daily_loss"]
            for body, field in (({"max_daily_loss": -5}, "max_daily_loss"), ({"bogus": 1}, "bogus"),
                                ({"max_position_qty": "ten"}, "max_position_qty")):
                r = await a.put("/api/risk/limits", json=body, headers=h)
                assert r.status_code == 400 and field in r.text, (body, r.text)
            r = await a.put("/api/risk/limits", json={"max_position_qty": 50}, headers=h)
            assert r.status_code == 200 and r.json()["limits"]["max_position_qty"] == 50
            shown = (await a.get("/api/risk/limits")).json()
            assert shown["custom"] and shown["limits"]["max_position_qty"] == 50
            assert shown["limits"]["max_daily_loss"] == limits["limits"]["max_daily_loss"]  # the rest kept
            assert (await a.put("/api/risk/limits", json={"max_position_qty": 5})).status_code == 403  # no CSRF token

            ltp = (await kite.ltp("NSE:INFY"))["NSE:INFY"].last_price
            stop = int(ltp * 0.97 * 100) // 5 * 5
            order = {"exchange": "NSE", "tradingsymbol": "INFY", "transaction_type": "BUY", "quantity": 2}
            r = await a.post("/api/orders", json={**order, "stop_loss": int(ltp * 1.05 * 100)}, headers=h)
            assert r.status_code == 400 and r.json()["field"] == "stop_loss" and "stop-loss" in r.json()["detail"]
            r = await a.post("/api/orders", json={**order, "quantity": 0}, headers=h)
            assert r.status_code == 400 and "quantity" in r.text
            r = await a.post("/api/orders", json={**order, "order_type": "SL-M"}, headers=h)
            assert r.status_code == 400 and r.json()["field"] == "trigger_price", r.text
            below = int(ltp * 0.95 * 100) // 5 * 5  # a stop-loss BUY triggers above the market, as Kite insists
            r = await a.post("/api/orders", json={**order, "order_type": "SL-M", "trigger_price": below}, headers=h)
            assert r.status_code == 400 and r.json()["field"] == "trigger_price" and "above the last price" in r.text
            r = await a.post("/api/orders", json={**order, "tradingsymbol": "NOSUCHCO"}, headers=h)
            assert r.status_code == 400 and r.json()["field"] == "tradingsymbol" and "NOSUCHCO" in r.json()["detail"]
            r = await a.post("/api/orders", json={**order, "stop_loss": stop, "client_id": "api-1"}, headers=h)
            assert r.status_code == 201, r.text

            async def position():
                data = (await a.get("/api/positions/strategies", params={"strategy": "manual"})).json()
                return {p["tradingsymbol"]: p["quantity"] for p in data["positions"]}.get("INFY", 0)

            await eventually(lambda: _eq(position, 2), what="the manual position")

            async def the_stop():
                page = (await a.get("/api/orders", params={"status": "open", "strategy": "manual"})).json()
                return [o for o in page["items"] if o["kind"] == "stop_loss" and o["order_id"]]

            (sl,) = await eventually(the_stop, what="its stop at the broker")
            r = await a.delete(f"/api/orders/{sl['tag']}", headers=h)
            assert r.status_code == 400 and r.json()["field"] == "tag"
            r = await a.patch(f"/api/orders/{sl['tag']}", json={"trigger_price": stop - 500, "price": stop - 1000},
                              headers=h)
            assert r.status_code == 200, r.text
            r = await a.patch(f"/api/orders/{sl['tag']}", json={"quantity": 5}, headers=h)
            assert r.status_code == 400 and r.json()["field"] == "quantity"

            r = await a.post("/api/positions/square-off", json={"reason": "done for the day"}, headers=h)
            assert r.status_code == 200 and r.json()["placed"]
            await eventually(lambda: _eq(position, 0), what="flat")
            assert not await the_stop()

            r = await a.post("/api/risk/halt", json={"reason": "pressed Halt"}, headers=h)
            assert r.status_code == 200 and r.json()["state"] == "HALTED"
            r = await a.post("/api/orders", json={**order, "client_id": "api-2"}, headers=h)
            assert r.status_code == 409 or (r.status_code == 400 and "HALTED" in r.text), r.text
            assert (await a.post("/api/risk/reset", json={"reason": "test over"}, headers=h)).json()["state"] == "ACTIVE"


async def _eq(read, value) -> bool:
    return await read() == value
