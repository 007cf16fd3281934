"""The gateway's instrument list follows the exchange's day, through the real stack: a kite_sim at 60x opening on
NIFTY's December monthly expiry (its future and that day's options expire at the close) runs into its next trading
day hours before the machine's next 08:35. From then the gateway's symbol search no longer finds the expired future
and finds the one the new day lists, and its option chain offers the new day's expiries — a trader could pick
a contract that had expired from the order form."""

from __future__ import annotations

from contextlib import aclosing
from datetime import date

import pytest

from tests.gateway.conftest import connect_kite, login, serve_with_workers
from tests.helpers import eventually
from tests.simkit import start_sim

pytestmark = pytest.mark.slow(seconds=20)
EXPIRY = "2026-12-29"


@pytest.fixture(scope="module")
def gw_sim(tmp_path_factory, gateway_port):
    """This module's own sim, opening on the expiry day."""
    s = start_sim(tmp_path_factory.mktemp("listing-sim"), speed=60.0, extra=("--date", EXPIRY),
                  redirect_url=f"http://127.0.0.1:{gateway_port}/auth/kite/callback")
    yield s
    s.stop()


@pytest.fixture
async def trader(gw_settings, gw_sim, bus):
    async with serve_with_workers(gw_settings, bus) as gw:
        client, csrf = await login(gw)
        async with aclosing(client):
            await connect_kite(client, gw_sim)
            yield gw, client, csrf


async def found(client, q: str) -> set[str]:
    r = await client.get("/api/instruments", params={"q": q, "limit": 50})
    assert r.status_code == 200, r.text
    return {row["tradingsymbol"] for row in r.json()}


async def chain_expiries(client) -> list[str]:
    r = await client.get("/api/option-chain", params={"underlying": "NIFTY"})
    assert r.status_code == 200, r.text
    return r.json()["expiries"]


async def test_search_and_option_chain_follow_the_exchange_s_listing_day(trader, gw_sim):
    gw, client, csrf = trader
    assert gw_sim.trading_day() == EXPIRY
    r = await client.post("/api/live/start", headers={"X-CSRF-Token": csrf}, json={"symbols": ["NSE:NIFTY 50"]})
    assert r.status_code == 200, r.text  # the ticker hears the exchange's time from the feed
    kite = await gw.services.trading.client("DEMO01")  # the broker's own dump, not the gateway's list

    async def nifty() -> dict:
        return {i.tradingsymbol: i for i in await kite.instruments("NFO") if i.name == "NIFTY"}

    before = await nifty()
    (expiring,) = [s for s, i in before.items() if i.instrument_type == "FUT" and i.expiry == date.fromisoformat(EXPIRY)]
    assert expiring in await found(client, expiring)
    assert EXPIRY in await chain_expiries(client)

    gw_sim.advance_to(15, 29, 50)
    await eventually(lambda: gw_sim.get("/sim/clock").json()["listed_day"] != EXPIRY, what="the next day listed")
    after = await nifty()
    (listed,) = [s for s, i in after.items() if i.instrument_type == "FUT" and s not in before]  # February's
    new_weekly = min(i.expiry for s, i in after.items() if s not in before and i.instrument_type == "CE").isoformat()
    assert expiring not in after

    async def following() -> bool:
        return expiring not in await found(client, expiring) and listed in await found(client, listed)

    await eventually(following, timeout=30, what=f"the search without {expiring} and with {listed}")
    expiries = await chain_expiries(client)
    assert EXPIRY not in expiries and new_weekly in expiries, (expiries, new_weekly)
