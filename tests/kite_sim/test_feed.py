"""The ticker feed survives its instruments, on a real sim over a real WebSocket: an option trading at ₹0.05
has no price below one tick anywhere (depth, circuit limits) and its full-mode packets keep flowing; an
instrument whose packet cannot be built (the ``poison_tokens`` fault) is left out of the frames while every
other instrument keeps ticking, logged once — not on every 250 ms heartbeat — and back when it recovers."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from websockets.sync.client import ClientConnection, connect

from shared.kite import codec
from shared.messages import Tick
from tests.helpers import eventually_blocking
from tests.kite_sim.kit import module_sim, paced, sim_log

pytestmark = pytest.mark.timeout(120)

sim_dir, sim = module_sim("feed", seed=23)
INFY = 408065


@pytest.fixture(scope="module")
def penny_option(sim, kite):
    """The highest NIFTY call of the nearest expiry with NIFTY pinned 20% below it: worth ₹0.05."""
    sim.admin("price", {"underlying": "NIFTY", "price": 20000.0})
    calls = [i for i in paced(lambda: kite.instruments("NFO")) if i["name"] == "NIFTY" and i["instrument_type"] == "CE"]
    nearest = min(i["expiry"] for i in calls)
    yield max((i for i in calls if i["expiry"] == nearest), key=lambda i: i["strike"])
    sim.admin("price", {"underlying": "NIFTY", "price": None})


def feed(sim, kite, tokens: list[int]) -> ClientConnection:
    ws = connect(f"{sim.ws_root}?api_key={sim.api_key}&access_token={kite.access_token}", open_timeout=10)
    ws.send(json.dumps({"a": "subscribe", "v": tokens}))
    ws.send(json.dumps({"a": "mode", "v": ["full", tokens]}))
    return ws


def frames(ws: ClientConnection, n: int, keep: Callable[[dict[int, Tick]], bool]) -> list[dict[int, Tick]]:
    """The next ``n`` tick frames that ``keep`` accepts (by token), within a deadline."""
    out: list[dict[int, Tick]] = []

    def more() -> bool:
        msg = ws.recv(timeout=5)
        if isinstance(msg, bytes) and len(msg) > 1:
            ticks = {t.instrument_token: t for t in codec.decode_frame(msg)}
            if keep(ticks):
                out.append(ticks)
        return len(out) >= n

    eventually_blocking(more, 20, f"{n} frames", poll=0)
    return out


def test_an_option_at_five_paise_never_quotes_an_impossible_price(kite, penny_option):
    key = f"NFO:{penny_option['tradingsymbol']}"
    q = paced(lambda: kite.quote([key]))[key]
    assert q["last_price"] == 0.05
    assert q["lower_circuit_limit"] >= 0.05 and q["ohlc"]["low"] >= 0.05
    assert len(q["depth"]["buy"]) == len(q["depth"]["sell"]) == 5  # Kite's five levels, empty ones zero
    assert all(d["price"] >= 0.05 or (d["price"], d["quantity"], d["orders"]) == (0, 0, 0) for d in q["depth"]["buy"])
    assert q["depth"]["buy"][0]["price"] == 0.05 and q["depth"]["buy"][0]["quantity"] > 0


def test_the_feed_keeps_flowing_with_a_five_paise_option(sim, sim_dir, kite, penny_option):
    token = penny_option["instrument_token"]
    with feed(sim, kite, [token, INFY]) as ws:
        got = frames(ws, 8, lambda ticks: {token, INFY} <= set(ticks))  # 2 s of the sim's heartbeats
    for ticks in got:
        penny = ticks[token]
        assert penny.last_price == 0.05 and penny.mode == "full"
        assert all(p >= 0.05 or (p, q) == (0, 0) for q, p, _ in penny.depth.buy + penny.depth.sell)
        assert ticks[INFY].last_price > 0
    assert "failed" not in sim_log(sim_dir)


def test_one_bad_instrument_never_stops_the_others(sim, sim_dir, kite, penny_option):
    token = penny_option["instrument_token"]
    sim.faults(poison_tokens=[INFY])
    try:
        with feed(sim, kite, [token, INFY]) as ws:
            got = frames(ws, 12, lambda ticks: token in ticks)  # 3 s: twelve heartbeats without INFY
            assert all(INFY not in ticks for ticks in got[1:])
            log = sim_log(sim_dir)
            assert log.count(f"the packet of INFY ({INFY}) failed") == 1  # once, not every 250 ms
            assert "poisoned instrument" in log
            sim.faults(poison_tokens=[])
            frames(ws, 1, lambda ticks: {token, INFY} <= set(ticks))  # INFY is back
        eventually_blocking(lambda: f"the packet of INFY ({INFY}) recovered" in sim_log(sim_dir), 10, "the recovery log")
    finally:
        sim.faults(poison_tokens=[])
