"""Two traders on one gateway with strategies of the same id on different symbols: each one's status
names only their own live tokens (also when the gateway has to ask the ticker again, as after a
restart: the symbols they started with, not what their strategies add to the feed), and each one's stream carries only their own instruments' ticks."""

from __future__ import annotations

import json
from contextlib import aclosing

from tests.gateway.conftest import connect_kite, login
from tests.gateway.sse import SSE
from tests.helpers import eventually

INFY, TCS, RELIANCE, SBIN = 408065, 2953217, 738561, 779521


async def live_tokens(client) -> set[int]:
    """As the status says once it knows (``live`` None: the ticker did not answer in time, asked again)."""
    async def known():
        status = (await client.get("/api/status")).json()
        return status if status["live"] is not None else None

    return set((await eventually(known, 30, "the ticker's answer"))["live_tokens"])


async def first_tick_token(client) -> int:
    async with SSE(client, "/api/stream") as stream:
        while True:
            ev = await stream.next_event(20)
            if ev[1] == "ticks":
                return json.loads(ev[2])["instrument_token"]


async def test_live_tokens_and_ticks_are_each_users_own(stack, gw_sim):
    a, csrf_a = await login(stack)
    b, csrf_b = await login(stack, "DEMO02", "demo2@kta.local")
    ha, hb = {"X-CSRF-Token": csrf_a}, {"X-CSRF-Token": csrf_b}
    async with aclosing(a), aclosing(b):
        try:
            assert (await connect_kite(a, gw_sim)).status_code == 303
            assert (await connect_kite(b, gw_sim, "DEMO02", "demo2")).status_code == 303
            for client, headers, symbol in ((a, ha, "NSE:TCS"), (b, hb, "NSE:SBIN")):  # one id, two users
                r = await client.post("/api/strategies/add", headers=headers, json={
                    "strategy": "ema_crossover", "strategy_id": "same-id", "symbols": [symbol]})
                assert r.status_code == 200, r.text
            assert (await a.post("/api/live/start", headers=ha, json={"symbols": ["NSE:INFY"]})).status_code == 200
            assert (await b.post("/api/live/start", headers=hb, json={"symbols": ["NSE:RELIANCE"]})).status_code == 200

            assert await live_tokens(a) == {INFY} and await live_tokens(b) == {RELIANCE}
            stack.services.trading.live_tokens.clear()  # forgotten, as after a gateway restart: ask the ticker
            mine_a, mine_b = await live_tokens(a), await live_tokens(b)
            # what each started live on, not what their strategies add to the feed (TCS, SBIN): the dashboard
            # showed a chip per option of a straddle's chain after a gateway restart ("live on 120 symbols")
            assert mine_a == {INFY} and mine_b == {RELIANCE}, (mine_a, mine_b)
            assert await first_tick_token(b) in mine_b
        finally:  # nothing left live for the tests after this one
            for client, headers in ((a, ha), (b, hb)):
                assert (await client.post("/api/live/stop", headers=headers, json={})).status_code == 200
        assert await live_tokens(a) == set() and await live_tokens(b) == set()
