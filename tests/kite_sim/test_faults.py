"""Every fault kite_sim offers through ``/sim/faults`` (and its other admin controls), injected into a
real sim process and observed from the outside: added latency, 429s (Kite's per-endpoint limits and
forced ones), rejects of the next N orders with a chosen reason, partial-fill-then-cancel, held fills,
dropped ticker connections (on demand and periodically), malformed ticker frames and expired sessions.
Each one also shows up in the sim's log."""

from __future__ import annotations

import json
import socket
import time
from collections import Counter

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from shared.kite import codec, tls
from tests.helpers import eventually_blocking
from tests.kite_sim.kit import module_sim, sim_log
from tests.simkit import login, start_sim

pytestmark = [pytest.mark.slow(seconds=20), pytest.mark.timeout(120)]


sim_dir, sim = module_sim("faults", seed=5)


@pytest.fixture(scope="module")
def token(sim):
    return login(sim)


@pytest.fixture
def api(sim, token):
    sim.reset_faults()
    with httpx.Client(base_url=sim.root, headers={"X-Kite-Version": "3",
                                                  "Authorization": f"token {sim.api_key}:{token}"},
                      verify=tls.context()) as c:
        yield c
    sim.reset_faults()


def ok_call(api: httpx.Client, method: str, path: str, **kw) -> dict:
    """A call that must succeed, waiting out Kite's per-second limits (a 429 is retried)."""
    return eventually_blocking(lambda: _answer(api.request(method, path, **kw)), 10, f"{method} {path}")


def _answer(r: httpx.Response):
    if r.status_code == 429:
        return None
    assert r.status_code == 200, r.text
    return r.json()["data"]


def place(api, qty=1, **extra) -> str:
    form = {"exchange": "NSE", "tradingsymbol": "INFY", "transaction_type": "BUY", "quantity": qty,
            "product": "MIS", "order_type": "MARKET", "market_protection": 3, **extra}
    return ok_call(api, "POST", "/orders/regular", data=form)["order_id"]


def last(api, oid: str) -> dict:
    return ok_call(api, "GET", f"/orders/{oid}")[-1]


def test_admin_api_is_off_without_the_flag(tmp_path):
    plain = start_sim(tmp_path, admin=False)
    try:
        assert plain.post("/sim/faults", json={"reject_next": 1}).status_code == 404
        assert plain.get("/sim/health").json()["ok"] is True
    finally:
        plain.stop()


def test_unknown_fault_field_is_a_400_naming_it(sim):
    r = sim.post("/sim/faults", json={"explode": 1})
    assert r.status_code == 400 and "explode" in r.text


def test_added_latency(sim, api):
    ok_call(api, "GET", "/user/profile")
    sim.faults(latency_ms=400)
    started = time.monotonic()
    ok_call(api, "GET", "/user/profile")
    assert time.monotonic() - started >= 0.4  # a lower bound: the fault adds at least this much


def test_a_delayed_order_is_taken_even_when_the_client_gave_up(sim, api):
    """The latency fault delays the answer of a request the sim has already received: an order whose client
    times out still lands (what a lost answer from Kite looks like)."""
    sim.faults(latency_ms=600)
    form = {"exchange": "NSE", "tradingsymbol": "INFY", "transaction_type": "BUY", "quantity": 1, "product": "MIS",
            "order_type": "LIMIT", "price": 1000.0, "tag": "gave-up"}
    with pytest.raises(httpx.ReadTimeout):
        api.post("/orders/regular", data=form, timeout=0.2)
    sim.faults(latency_ms=0)
    taken = eventually_blocking(lambda: [o for o in ok_call(api, "GET", "/orders") if o["tag"] == "gave-up"], 10,
                                "the order the client gave up on")
    assert len(taken) == 1


def test_forced_429_then_recovery(sim, api):
    sim.faults(rate_limit_next=2)
    codes = [api.get("/user/profile").status_code for _ in range(3)]
    assert codes == [429, 429, 200]
    sim.faults(rate_limit_next=1)
    r429 = api.get("/user/profile")
    assert r429.json() == {"status": "error", "message": "Too many requests", "data": None,
                           "error_type": "NetworkException"}
    assert sim.admin("faults", {})["counts"]["rate_limited"] >= 3


@pytest.mark.parametrize("path, limit", [("/quote?i=NSE:INFY", 1), ("/user/profile", 10)])
def test_kites_per_endpoint_limits(api, path, limit):
    """Kite allows 1 quote and 10 other requests a second per api_key: a burst gets 429s, and no calendar
    second ever has more successes than the limit (a success counts for the second it was sent and
    answered in; one that straddles two seconds could have been admitted in either, so it is not counted)."""
    ok_per_second: Counter[int] = Counter()
    statuses = []
    until = int(time.time()) + 2  # into a second whose budget no earlier test spent (a burst fits in one second)
    while len(statuses) < limit * 3 + 3 or time.time() < until:
        sent = int(time.time())
        r = api.get(path)
        statuses.append(r.status_code)
        if r.status_code == 200 and int(time.time()) == sent:
            ok_per_second[sent] += 1
    assert set(statuses) <= {200, 429} and 429 in statuses and 200 in statuses
    assert max(ok_per_second.values(), default=0) <= limit


def test_a_request_counts_in_the_second_it_arrives_not_when_the_sim_gets_to_it(sim, api, token):
    """Kite counts a request against its limits in the calendar second it arrives in. Eleven requests written at
    once on one connection arrive together; the sim answers them one after another, each 150 ms late (the
    latency fault), over almost two seconds. Counted when answered they would all pass; counted on arrival,
    as Kite does, the eleventh is over the 10 a second."""
    ok_call(api, "GET", "/user/profile")
    spent = int(time.time())  # this api_key's last request: the burst goes into a second nothing else spent
    eventually_blocking(lambda: int(time.time()) > spent, 5, "a second this api_key has spent nothing in")
    sim.faults(latency_ms=150)
    request = (f"GET /user/profile HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Kite-Version: 3\r\n"
               f"Authorization: token {sim.api_key}:{token}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", sim.port), timeout=30) as conn:
        conn.sendall(request * 11)
        statuses = _pipelined_statuses(conn.makefile("rb"), 11)
    assert statuses == [200] * 10 + [429], statuses


def _pipelined_statuses(answers, count: int) -> list[int]:
    statuses = []
    for _ in range(count):
        statuses.append(int(answers.readline().split()[1]))
        length = 0
        while (line := answers.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            length = int(value) if name.lower() == "content-length" else length
        answers.read(length)
    return statuses


def test_reject_next_n_orders_with_a_reason(sim, api):
    sim.faults(reject_next=2, reject_reason="RMS:Blocked for trading: circuit limit")
    a, b, c = place(api), place(api), place(api)
    for oid in (a, b):
        row = last(api, oid)
        assert (row["status"], row["status_message"]) == ("REJECTED", "RMS:Blocked for trading: circuit limit")
    assert last(api, c)["status"] == "COMPLETE"
    assert sim.admin("faults", {})["reject_next"] == 0


def test_partial_fill_then_cancel(sim, api):
    sim.faults(partial_then_cancel_next=1)
    oid = place(api, qty=10)
    row = last(api, oid)
    assert row["status"] == "CANCELLED"
    assert 0 < row["filled_quantity"] < 10 and row["filled_quantity"] + row["cancelled_quantity"] == 10
    trades = ok_call(api, "GET", f"/orders/{oid}/trades")
    assert sum(t["quantity"] for t in trades) == row["filled_quantity"]
    assert last(api, place(api, qty=10))["status"] == "COMPLETE"  # only the next N


def test_hold_fills_keeps_marketable_orders_open(sim, api):
    sim.faults(hold_fills=True)
    oid = place(api)
    assert last(api, oid)["status"] == "OPEN"
    sim.faults(hold_fills=False)
    eventually_blocking(lambda: last(api, oid)["status"] == "COMPLETE", 10, "fill after release")


def _ws(sim, token):
    return connect(f"{sim.ws_root}?api_key={sim.api_key}&access_token={token}", open_timeout=10)


def _closed_within(ws, seconds: float) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            ws.recv(timeout=max(0.05, deadline - time.monotonic()))
        except ConnectionClosed as e:
            return e.rcvd.code if e.rcvd else -1
        except TimeoutError:
            break
    raise AssertionError("the sim did not drop the connection")


def test_drop_ticker_connections_on_demand_and_periodically(sim, token, api, sim_dir):
    with _ws(sim, token) as ws:
        ws.recv(timeout=5)  # a heartbeat or a frame: the connection is live
        assert sim.admin("drop_ws")["dropped"] >= 1
        assert _closed_within(ws, 5) == 1001
    sim.faults(drop_ws_every=0.5)
    with _ws(sim, token) as ws:
        assert _closed_within(ws, 10) == 1001
    sim.faults(drop_ws_every=0.0)
    assert "dropped" in sim_log(sim_dir)


def _malformed(frame) -> bool:
    if not isinstance(frame, bytes):
        return False
    try:
        codec.decode_frame(frame)
    except codec.CodecError:
        return True
    return False


def test_malformed_frames(sim, token, api):
    with _ws(sim, token) as ws:
        ws.send(json.dumps({"a": "subscribe", "v": [408065]}))
        sim.faults(malformed_next=1)
        eventually_blocking(lambda: _malformed(ws.recv(timeout=5)), 10, "a malformed frame", poll=0)
        good = ws.recv(timeout=5)  # the connection carries on with proper frames
        assert isinstance(good, bytes)
        assert all(t.instrument_token == 408065 for t in codec.decode_frame(good))


def test_ticker_refuses_bad_tokens_and_reports_bad_messages(sim, token):
    with pytest.raises(Exception):  # noqa: B017 - the upgrade itself is refused
        with connect(f"{sim.ws_root}?api_key={sim.api_key}&access_token=wrong", open_timeout=5) as ws:
            ws.recv(timeout=5)
    with _ws(sim, token) as ws:
        for bad in ("not json", json.dumps({"a": "unsubscribe", "v": 5}), json.dumps({"a": "mode", "v": ["x"]})):
            ws.send(bad)
            msg = eventually_blocking(lambda: next((m for m in [ws.recv(timeout=5)] if isinstance(m, str)), None),
                                      10, "error", poll=0)
            assert json.loads(msg)["type"] == "error"
        ws.send(json.dumps({"a": "subscribe", "v": [408065]}))  # the connection survived the bad messages
        eventually_blocking(lambda: isinstance(m := ws.recv(timeout=5), bytes) and any(
            t.instrument_token == 408065 for t in codec.decode_frame(m)), 10, "ticks after the bad messages", poll=0)


def test_an_account_reset_leaves_it_as_if_it_never_traded(sim, api):
    first = place(api, qty=2)
    eventually_blocking(lambda: last(api, first)["status"] == "COMPLETE", 10, "the buy filled")
    assert any(p["quantity"] for p in ok_call(api, "GET", "/portfolio/positions")["net"])
    assert sim.admin("accounts/reset", {"user_id": "DEMO01"})["orders_dropped"] >= 1
    assert api.get("/orders").json()["data"] == [] and api.get("/trades").json()["data"] == []
    assert api.get("/portfolio/positions").json()["data"]["net"] == []  # the session still answers
    assert int(place(api)) > int(first)  # order ids are never reused
    assert sim.post("/sim/accounts/reset", json={"user_id": "NOBODY"}).status_code == 400


def test_a_sim_reset_opens_every_account_afresh_turns_faults_off_and_releases_prices(sim, api):
    def holdings():
        return [(h["tradingsymbol"], h["quantity"], h["average_price"]) for h in ok_call(api, "GET", "/portfolio/holdings")]

    opening = holdings()
    spot = ok_call(api, "GET", "/quote/ltp", params={"i": "NSE:INFY"})["NSE:INFY"]["last_price"]
    sim.admin("price", {"underlying": "INFY", "price": round(spot * 1.5, 1)})
    place(api)
    sim.faults(hold_fills=True, reject_reason="RMS: test", latency_ms=5)
    after = sim.admin("reset")
    assert after["faults"]["hold_fills"] is False and after["faults"]["latency_ms"] == 0
    assert after["faults"]["reject_reason"].startswith("RMS:Margin Exceeds")
    assert api.get("/orders").json()["data"] == [] and holdings() == opening
    assert ok_call(api, "GET", "/quote/ltp", params={"i": "NSE:INFY"})["NSE:INFY"]["last_price"] < spot * 1.2


def test_expire_sessions(sim, api, sim_dir):
    token = login(sim)
    headers = {"Authorization": f"token {sim.api_key}:{token}", "X-Kite-Version": "3"}
    assert sim.admin("expire_sessions")["expired"] >= 1
    r = sim.get("/user/profile", headers=headers)
    assert r.status_code == 403 and r.json()["error_type"] == "TokenException"


def test_every_fault_is_logged(sim_dir):
    log = sim_log(sim_dir)
    for needle in ("faults set", "fault: 429", "REJECTED", "Partially filled", "dropped", "malformed",
                   "expired", "429: GET /quote"):
        assert needle in log, needle


def test_faults_from_a_config_file(tmp_path):
    from tests.kite_sim.kit import client, paced, start_sim_with

    (tmp_path / "faults.json").write_text(json.dumps({"reject_next": 1, "reject_reason": "RMS:from the file"}))
    s = start_sim_with(tmp_path, "--faults", str(tmp_path / "faults.json"))
    try:
        kite = client(s)
        oid = paced(lambda: kite.place_order("regular", "NSE", "INFY", "BUY", 1, "MIS", "MARKET", market_protection=2))
        last_row = paced(lambda: kite.order_history(oid))[-1]
        assert (last_row["status"], last_row["status_message"]) == ("REJECTED", "RMS:from the file")
    finally:
        s.stop()
