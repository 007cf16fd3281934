"""The price chart's day so far (GET /api/chart/{token}): the session's minute closes as Kite's historical
API gives them and the trader's fills of that instrument on its minute's point; bad input named; no
session, no chart."""

from __future__ import annotations

from contextlib import aclosing
from datetime import date

from shared import ist
from shared.kite.client import KiteClient
from tests.gateway.conftest import connect_kite, login
from tests.helpers import eventually
from tests.simkit import login as kite_login


async def test_the_days_minute_closes_and_the_traders_fills(stack, gw_sim):
    kite = KiteClient(gw_sim.api_key, kite_login(gw_sim), root=gw_sim.root)
    a, csrf = await login(stack)
    async with aclosing(a), aclosing(kite):
        assert (await stack.client().get("/api/chart/408065")).status_code == 401  # no session, no chart
        assert (await a.get("/api/chart/408065")).status_code == 409  # Kite not connected: said so
        await connect_kite(a, gw_sim)
        token = (await a.get("/api/instruments", params={"q": "INFY"})).json()[0]["instrument_token"]
        r = await a.post("/api/orders", headers={"X-CSRF-Token": csrf},
                         json={"exchange": "NSE", "tradingsymbol": "INFY", "transaction_type": "BUY", "quantity": 3,
                               "client_id": "chart-1"})
        assert r.status_code == 201, r.text

        async def fill():
            items = (await a.get("/api/trades", params={"limit": 10})).json()["items"]
            return next((t for t in items if t["instrument_token"] == token), None)

        filled = await eventually(fill, what="the order's fill journaled")
        day = filled["day"]

        async def charted():
            got = (await a.get(f"/api/chart/{token}")).json()
            return got if got["fills"] else None

        chart = await eventually(charted, what="the fill on the chart")
        assert chart["token"] == token and chart["day"] == day  # the desk's trading day, not this machine's
        # the points are Kite's own minute candles: each at its minute's last second, with the close
        candles = await kite.historical_data(token, date.fromisoformat(day), date.fromisoformat(day), "minute")
        expected = [[int(c.date.timestamp()) + 59, c.close] for c in candles]
        assert chart["points"] and chart["points"] == expected[:len(chart["points"])]
        assert all(t % 60 == 59 for t, _ in chart["points"]) and len({t for t, _ in chart["points"]}) == len(chart["points"])
        # the fill: on the point of its minute, side, quantity and price as journaled
        at = int(ist.parse(filled["fill_timestamp"])) // 60 * 60 + 59
        assert chart["fills"] == [[at, "BUY", 3, filled["price"] / 100]]
        # another instrument's chart carries none of INFY's fills
        tcs = (await a.get("/api/instruments", params={"q": "TCS"})).json()[0]["instrument_token"]
        assert (await a.get(f"/api/chart/{tcs}", params={"day": day})).json()["fills"] == []
        # a day asked for explicitly; another day's fills are not this day's
        assert (await a.get(f"/api/chart/{token}", params={"day": day})).json()["fills"] == chart["fills"]

        # bad input: a 4xx naming the field, never a 500
        for params, field in (({"day": "2026-13-45"}, "day"), ({"day": "yesterday"}, "day")):
            r = await a.get(f"/api/chart/{token}", params=params)
            assert r.status_code == 400 and field in r.text, (params, r.text)
        for path in ("/api/chart/0", "/api/chart/abc", "/api/chart/999999999"):
            r = await a.get(path)
            assert 400 <= r.status_code < 500, (path, r.status_code, r.text)
