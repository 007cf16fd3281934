"""kite_sim's REST responses, taken off the wire from a real sim process, against Zerodha's official mock
responses (``shared/reference/kiteconnect-mocks`` beside the checkout): the same keys and the same JSON types,
recursively, for every endpoint the sim serves that has a mock.

Intentional differences, each with its reason:
- NULLABLE: fields Kite itself sends as null in some states (an order not yet at the exchange has no
  ``exchange_order_id`` / ``exchange_timestamp``; ``status_message`` only on rejects/cancels; ``tag`` only
  when given; ``avatar_url`` is null in Kite's own profile mock).
- ORDER_HISTORY_EXTRA: ``order_info.json`` is a 2017 capture; the sim's history rows are the same order
  object as ``/orders``, whose current mock (``orders.json``) has these fields.
- GTT: an untriggered leg's ``result`` is null, as in Kite's own ``gtt_get_order.json``.
- Not covered: ``full_profile`` (``/user/profile/full``), alerts, MF and auctions are endpoints the sim
  does not serve; the ticker packets are checked by tests/kite/test_codec.py.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import date, timedelta

import httpx
import pytest

from shared.kite import tls
from tests.helpers import eventually_blocking
from tests.kite_sim.conformance import compare, compare_map
from tests.simkit import request_token, start_sim

pytestmark = pytest.mark.timeout(120)

NULLABLE = frozenset({"exchange_order_id", "exchange_timestamp", "exchange_update_timestamp", "status_message",
                      "status_message_raw", "tag", "avatar_url", "parent_order_id"})
ORDER_HISTORY_EXTRA = frozenset({"account_id", "status_message_raw", "exchange_update_timestamp", "validity_ttl",
                                 "market_protection", "meta", "tags", "guid"})


@pytest.fixture(scope="module")
def mock(kite_mocks):
    """The official mock response ``name``.json."""
    return lambda name: json.loads((kite_mocks / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def wire(tmp_path_factory):
    """A sim with a day's activity on it, and a function returning any endpoint's raw JSON body."""
    sim = start_sim(tmp_path_factory.mktemp("conformance"), seed=3, speed=60.0)
    rt = request_token(sim)
    checksum = hashlib.sha256(f"{sim.api_key}{rt}{sim.api_secret}".encode()).hexdigest()
    session = sim.post("/session/token", headers={"X-Kite-Version": "3"},
                         data={"api_key": sim.api_key, "request_token": rt, "checksum": checksum}).json()
    token = session["data"]["access_token"]
    client = httpx.Client(base_url=sim.root, headers={"X-Kite-Version": "3",
                                                      "Authorization": f"token {sim.api_key}:{token}"},
                          verify=tls.context())

    def call(method: str, path: str, **kw) -> dict:
        def attempt():
            r = client.request(method, path, **kw)
            if r.status_code == 429:  # Kite's per-second limits: wait and retry
                return None
            assert r.status_code == 200, (path, r.text)
            assert r.headers["content-type"].startswith("application/json")
            return r.json()

        return eventually_blocking(attempt, 10, f"{method} {path}")

    ltp = call("GET", "/quote/ltp", params={"i": "NSE:INFY"})["data"]["NSE:INFY"]["last_price"]
    state = {"session": session, "token": token, "sim": sim, "client": client,
             "limit_price": round(round(ltp * 0.9 / 0.05) * 0.05, 2)}
    state["market"] = call("POST", "/orders/regular", data={
        "exchange": "NSE", "tradingsymbol": "INFY", "transaction_type": "BUY", "quantity": 2, "product": "MIS",
        "order_type": "MARKET", "market_protection": 2, "tag": "conformance"})
    state["oid"] = state["market"]["data"]["order_id"]
    yield call, state
    client.close()
    sim.stop()


def dump(client: httpx.Client, path: str) -> httpx.Response:
    """An instrument dump, waiting out Kite's per-second limit (a 429 is JSON, not the CSV)."""
    return eventually_blocking(lambda: (r := client.get(path)).status_code != 429 and r, 10, f"GET {path}")


def test_session_token(wire, mock):
    _, state = wire
    assert compare(mock("generate_session"), state["session"], nullable=NULLABLE) == []


@pytest.mark.parametrize("name, path", [
    ("profile", "/user/profile"), ("margins", "/user/margins"), ("margins_equity", "/user/margins/equity"),
    ("margin_commodity", "/user/margins/commodity"), ("holdings", "/portfolio/holdings"),
    ("orders", "/orders"), ("trades", "/trades"), ("positions", "/portfolio/positions"),
])
def test_reads(wire, name, path, mock):
    call, _ = wire
    body = call("GET", path)
    if isinstance(body["data"], list):
        assert body["data"], f"{path} answered an empty list: nothing to compare"
    assert compare(mock(name), body, nullable=NULLABLE) == []


def test_order_history_and_trades(wire, mock):
    call, state = wire
    history = call("GET", f"/orders/{state['oid']}")
    assert len(history["data"]) >= 4
    assert compare(mock("order_info"), history, nullable=NULLABLE, extra=ORDER_HISTORY_EXTRA) == []
    trades = call("GET", f"/orders/{state['oid']}/trades")
    assert trades["data"] and compare(mock("order_trades"), trades, nullable=NULLABLE) == []


def test_place_modify_cancel(wire, mock):
    call, state = wire
    assert compare(mock("order_response"), state["market"]) == []
    placed = call("POST", "/orders/regular", data={
        "exchange": "NSE", "tradingsymbol": "INFY", "transaction_type": "BUY", "quantity": 1, "product": "CNC",
        "order_type": "LIMIT", "price": state["limit_price"]})
    oid = placed["data"]["order_id"]
    assert compare(mock("order_modify"), call("PUT", f"/orders/regular/{oid}", data={"quantity": 2})) == []
    assert compare(mock("order_cancel"), call("DELETE", f"/orders/regular/{oid}")) == []


def test_convert_position(wire, mock):
    call, _ = wire
    body = call("PUT", "/portfolio/positions", data={
        "exchange": "NSE", "tradingsymbol": "INFY", "transaction_type": "BUY", "position_type": "day",
        "quantity": 1, "old_product": "MIS", "new_product": "NRML"})
    assert compare(mock("convert_position"), body) == []


@pytest.mark.parametrize("name, path", [("quote", "/quote"), ("ohlc", "/quote/ohlc"), ("ltp", "/quote/ltp")])
def test_quotes(wire, name, path, mock):
    call, state = wire
    nfo = csv.DictReader(io.StringIO(dump(state["client"], "/instruments/NFO").text))
    option = next(r["tradingsymbol"] for r in nfo if r["instrument_type"] == "CE")
    body = call("GET", path, params=[("i", "NSE:INFY"), ("i", f"NFO:{option}"), ("i", "NSE:NIFTY 50")])
    assert set(body) == {"status", "data"} and len(body["data"]) == 3
    assert compare_map(mock(name)["data"], body["data"]) == []


@pytest.mark.parametrize("name, params", [("historical_minute", {}), ("historical_oi", {"oi": 1})])
def test_historical(wire, name, params, mock):
    call, _ = wire
    today = date.today()
    body = call("GET", "/instruments/historical/408065/minute",
                params={"from": f"{today - timedelta(days=6)} 09:15:00", "to": f"{today} 15:30:00", **params})
    assert body["data"]["candles"]
    assert compare(mock(name), body) == []


def test_margin_calculators(wire, mock):
    call, _ = wire
    spec = [{"exchange": "NSE", "tradingsymbol": "INFY", "transaction_type": "BUY", "variety": "regular",
             "product": "CNC", "order_type": "MARKET", "quantity": 1},
            {"exchange": "NSE", "tradingsymbol": "TCS", "transaction_type": "SELL", "variety": "regular",
             "product": "MIS", "order_type": "LIMIT", "quantity": 1, "price": 3100}]
    assert compare(mock("order_margins"), call("POST", "/margins/orders", json=spec)) == []
    assert compare(mock("basket_margins"), call("POST", "/margins/basket", json=spec)) == []


def test_contract_note(wire, mock):
    call, _ = wire
    executed = [{"order_id": "1", "exchange": "NSE", "tradingsymbol": "SBIN", "transaction_type": "BUY",
                 "variety": "regular", "product": "CNC", "order_type": "MARKET", "quantity": 1, "average_price": 560},
                {"order_id": "2", "exchange": "NSE", "tradingsymbol": "INFY", "transaction_type": "SELL",
                 "variety": "regular", "product": "MIS", "order_type": "LIMIT", "quantity": 5, "average_price": 1500}]
    body = call("POST", "/charges/orders", json=executed)
    assert len(body["data"]) == 2 and all(row["charges"]["total"] > 0 for row in body["data"])
    assert compare(mock("virtual_contract_note"), body) == []


@pytest.mark.parametrize("mock_csv, path", [("instruments_all.csv", "/instruments"),
                                            ("instruments_nse.csv", "/instruments/NSE")])
def test_instrument_dumps(wire, mock_csv, path, kite_mocks):
    _, state = wire
    r = dump(state["client"], path)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    ours = list(csv.DictReader(io.StringIO(r.text)))
    theirs = list(csv.DictReader(io.StringIO((kite_mocks / mock_csv).read_text())))
    assert list(ours[0]) == list(theirs[0])  # the same columns in the same order
    for row in ours:
        int(row["instrument_token"]), int(row["exchange_token"]), int(row["lot_size"])
        float(row["last_price"]), float(row["strike"]), float(row["tick_size"])
        assert row["expiry"] == "" or len(row["expiry"]) == 10


def test_gtt(wire, mock):
    """Place, get, list, modify (active), then a trigger fired by the sim's price (a result), and delete."""
    call, state = wire
    sim, nullable = state["sim"], NULLABLE | {"result"}
    sim.admin("price", {"underlying": "TCS", "price": 3000.0})
    try:
        cond = {"exchange": "NSE", "tradingsymbol": "TCS", "trigger_values": [3030.0], "last_price": 3000.0}
        orders = [{"exchange": "NSE", "tradingsymbol": "TCS", "transaction_type": "BUY", "quantity": 1,
                   "order_type": "LIMIT", "product": "CNC", "price": 3035.0}]
        form = {"type": "single", "condition": json.dumps(cond), "orders": json.dumps(orders)}
        placed = call("POST", "/gtt/triggers", data=form)
        assert compare(mock("gtt_place_order"), placed) == []
        tid = placed["data"]["trigger_id"]
        assert compare(mock("gtt_get_order"), call("GET", f"/gtt/triggers/{tid}"), nullable=nullable) == []
        cond["trigger_values"] = [3040.0]
        modified = call("PUT", f"/gtt/triggers/{tid}", data={**form, "condition": json.dumps(cond)})
        assert compare(mock("gtt_modify_order"), modified) == []
        sim.admin("price", {"underlying": "TCS", "price": 3041.0})
        fired = eventually_blocking(
            lambda: (g := call("GET", f"/gtt/triggers/{tid}"))["data"]["status"] == "triggered" and g,
            20, "the GTT to trigger")
        assert fired["data"]["orders"][0]["result"] is not None
        assert compare(mock("gtt_get_order"), fired, nullable=nullable) == []
        other = call("POST", "/gtt/triggers", data={**form, "condition": json.dumps({**cond, "trigger_values": [3100.0]})})
        listed = call("GET", "/gtt/triggers")
        assert {g["status"] for g in listed["data"]} == {"active", "triggered"}
        assert compare(mock("gtt_get_orders"), listed, nullable=nullable) == []
        deleted = call("DELETE", f"/gtt/triggers/{other['data']['trigger_id']}")
        assert compare(mock("gtt_delete_order"), deleted) == []
    finally:
        sim.admin("price", {"underlying": "TCS", "price": None})


def test_logout(wire, mock):
    call, state = wire
    body = call("DELETE", "/session/token", params={"api_key": state["sim"].api_key, "access_token": state["token"]})
    assert compare(mock("session_logout"), body) == []
