"""Kite's GTT API on a real sim process, driven by the official ``kiteconnect`` client unchanged: place, list,
get, modify and delete single and two-leg (OCO) triggers; the sim's own price firing them (the leg's LIMIT
order lands in the order book, fills, and the trigger turns ``triggered`` with the order's result); Kite's
refusals; F&O triggers expiring with their contract. Prices are pinned through the admin API so every
trigger is crossed on purpose."""

from __future__ import annotations

import json

import pytest
import requests
from kiteconnect import KiteConnect
from kiteconnect.exceptions import InputException

from tests.helpers import eventually_blocking
from tests.kite_sim.kit import module_sim, paced, sim_log

pytestmark = pytest.mark.timeout(120)

sim_dir, sim = module_sim("gtt", seed=21)
SPOT = 1500.0  # INFY is pinned here before each test


@pytest.fixture(autouse=True)
def pinned(sim):
    pin(sim, SPOT)
    yield
    sim.admin("price", {"underlying": "INFY", "price": None})


PINNED = [SPOT]


def pin(sim, price: float) -> None:
    sim.admin("price", {"underlying": "INFY", "price": price})
    PINNED[0] = price


def move(sim, kite: KiteConnect, price: float) -> None:
    """Pin INFY at ``price`` and return once the sim's heartbeat has judged every trigger at it: a sentinel
    trigger placed halfway (after the others, so judged after them in the same pass) has fired."""
    mid = round((PINNED[0] + price) / 2, 1)
    sentinel = paced(lambda: kite.place_gtt(kite.GTT_TYPE_SINGLE, "INFY", "NSE", [mid], PINNED[0],
                                            [leg("BUY", round(mid * 0.7, 1))]))["trigger_id"]
    pin(sim, price)
    triggered(kite, sentinel)


def leg(side: str, price: float, qty: int = 1, product: str = "CNC") -> dict:
    return {"transaction_type": side, "quantity": qty, "order_type": "LIMIT", "product": product, "price": price}


def oco(kite: KiteConnect, lower: float, upper: float, qty: int = 1) -> int:
    """A stop-loss below and a target above, both selling held shares (the classic protective OCO)."""
    return paced(lambda: kite.place_gtt(kite.GTT_TYPE_OCO, "INFY", "NSE", [lower, upper], SPOT,
                                        [leg("SELL", round(lower - 3, 1), qty), leg("SELL", round(upper - 3, 1), qty)]))[
        "trigger_id"]


def gtt(kite: KiteConnect, trigger_id: int) -> dict:
    return paced(lambda: kite.get_gtt(trigger_id))


def triggered(kite: KiteConnect, trigger_id: int) -> dict:
    return eventually_blocking(lambda: (g := gtt(kite, trigger_id))["status"] == "triggered" and g, 20,
                               "the GTT to trigger")


def test_two_leg_oco_stop_loss_fires_into_the_order_book(sim, sim_dir, kite):
    tid = oco(kite, 1470.0, 1560.0)
    g = gtt(kite, tid)
    assert (g["status"], g["type"], g["condition"]["trigger_values"]) == ("active", "two-leg", [1470.0, 1560.0])
    assert g["condition"]["instrument_token"] == 408065 and [o["result"] for o in g["orders"]] == [None, None]
    assert tid in [t["id"] for t in paced(kite.get_gtts)]

    pin(sim, 1468.0)  # through the stop-loss trigger
    g = triggered(kite, tid)
    stop, target = g["orders"]
    assert target["result"] is None  # one cancels the other: the target leg never fires
    result = stop["result"]
    assert result["triggered_at"] == 1468.0 and result["order_result"]["status"] == "success"
    assert json.loads(result["meta"]) == {"gtt": tid}
    oid = result["order_result"]["order_id"]
    order = eventually_blocking(
        lambda: (h := paced(lambda: kite.order_history(oid))[-1])["status"] == "COMPLETE" and h, 20,
        "the stop-loss order to fill")
    assert (order["transaction_type"], order["order_type"], order["product"], order["quantity"]) == (
        "SELL", "LIMIT", "CNC", 1)
    assert order["price"] == 1467.0 and order["average_price"] >= 1467.0 and order["meta"] == {"gtt": tid}
    assert order["variety"] == "regular" and order["validity"] == "DAY"

    move(sim, kite, 1570.0)  # the target's level afterwards: nothing more happens
    assert gtt(kite, tid)["orders"][1]["result"] is None
    assert f"gtt {tid} triggered at 1468.00" in sim_log(sim_dir)


def test_two_leg_target_fires_on_the_way_up(sim, kite):
    tid = oco(kite, 1470.0, 1530.0)
    pin(sim, 1533.5)
    g = triggered(kite, tid)
    assert g["orders"][0]["result"] is None
    assert g["orders"][1]["result"]["triggered_at"] == 1533.5
    oid = g["orders"][1]["result"]["order_result"]["order_id"]
    assert eventually_blocking(lambda: paced(lambda: kite.order_history(oid))[-1]["status"] == "COMPLETE", 20,
                               "target fill")


def test_single_fires_only_on_the_side_it_was_placed(sim, kite):
    """A breakout buy above the price: a fall below it does nothing, a rise through it buys."""
    tid = paced(lambda: kite.place_gtt(kite.GTT_TYPE_SINGLE, "INFY", "NSE", [1520.0], SPOT,
                                       [leg("BUY", 1525.0)]))["trigger_id"]
    move(sim, kite, 1480.0)
    assert gtt(kite, tid)["status"] == "active"
    pin(sim, 1521.0)
    result = triggered(kite, tid)["orders"][0]["result"]
    assert result["transaction_type"] == "BUY" and result["order_result"]["status"] == "success"


def test_modify_then_delete(sim, kite):
    tid = oco(kite, 1470.0, 1560.0)
    modified = paced(lambda: kite.modify_gtt(tid, kite.GTT_TYPE_OCO, "INFY", "NSE", [1450.0, 1580.0], SPOT,
                                             [leg("SELL", 1445.0, 2), leg("SELL", 1575.0, 2)]))
    assert modified == {"trigger_id": tid}
    g = gtt(kite, tid)
    assert g["condition"]["trigger_values"] == [1450.0, 1580.0] and [o["quantity"] for o in g["orders"]] == [2, 2]
    move(sim, kite, 1465.0)  # was the old stop-loss level: no longer a trigger
    assert gtt(kite, tid)["status"] == "active"
    assert paced(lambda: kite.delete_gtt(tid)) == {"trigger_id": tid}
    assert gtt(kite, tid)["status"] == "deleted"
    move(sim, kite, 1440.0)
    assert gtt(kite, tid)["status"] == "deleted"  # a deleted trigger never fires
    with pytest.raises(InputException, match="active"):
        paced(lambda: kite.delete_gtt(tid))
    with pytest.raises(InputException, match="active"):
        paced(lambda: kite.modify_gtt(tid, kite.GTT_TYPE_SINGLE, "INFY", "NSE", [1400.0], 1440.0,
                                      [leg("SELL", 1395.0)]))


def test_a_triggered_gtt_cannot_be_modified(sim, kite):
    tid = oco(kite, 1470.0, 1560.0)
    pin(sim, 1460.0)
    triggered(kite, tid)
    with pytest.raises(InputException, match="triggered"):
        paced(lambda: kite.modify_gtt(tid, kite.GTT_TYPE_OCO, "INFY", "NSE", [1400.0, 1600.0], 1460.0,
                                      [leg("SELL", 1395.0), leg("SELL", 1595.0)]))


def test_a_refused_leg_is_a_failed_result(sim, kite):
    """The leg's LIMIT price is outside the day's circuit band: the trigger fires, the order is rejected."""
    q = paced(lambda: kite.quote(["NSE:INFY"]))["NSE:INFY"]
    tid = paced(lambda: kite.place_gtt(kite.GTT_TYPE_SINGLE, "INFY", "NSE", [1480.0], SPOT,
                                       [leg("SELL", round(q["lower_circuit_limit"] * 0.5, 1))]))["trigger_id"]
    pin(sim, 1475.0)
    outcome = triggered(kite, tid)["orders"][0]["result"]["order_result"]
    assert outcome["status"] == "failed"
    assert outcome["rejection_reason"].startswith("Your order price is lower than the current lower circuit limit of ")
    assert paced(lambda: kite.order_history(outcome["order_id"]))[-1]["status"] == "REJECTED"


@pytest.mark.parametrize("kind, values, orders, message", [
    ("single", [1499.0], [leg("SELL", 1495.0)], "too close"),  # under 0.25% from 1500
    ("two-leg", [1510.0, 1560.0], [leg("SELL", 1505.0), leg("SELL", 1555.0)], "bracket"),
    ("two-leg", [1470.0, 1560.0], [leg("BUY", 1475.0), leg("SELL", 1555.0)], "only sell"),
    ("single", [1470.0], [leg("SELL", 1465.0, product="MIS")], "CNC"),
    ("single", [1470.0], [{**leg("SELL", 1465.0), "order_type": "MARKET"}], "LIMIT"),
    ("single", [1470.0], [leg("SELL", 1465.0, qty=0)], "quantity"),
])
def test_kites_refusals(kite, kind, values, orders, message):
    with pytest.raises(InputException, match=message):
        paced(lambda: kite.place_gtt(kind, "INFY", "NSE", values, SPOT, orders))


def test_malformed_forms_and_unknown_ids(sim, kite):
    headers = {"X-Kite-Version": "3", "Authorization": f"token {sim.api_key}:{kite.access_token}"}
    cond = {"exchange": "NSE", "tradingsymbol": "INFY", "trigger_values": [1470.0], "last_price": SPOT}
    one = [{"exchange": "NSE", "tradingsymbol": "INFY", **leg("SELL", 1465.0)}]
    cases = [({"type": "triple", "condition": json.dumps(cond), "orders": json.dumps(one)}, "type"),
             ({"type": "single", "condition": "{not json", "orders": json.dumps(one)}, "condition"),
             ({"type": "single", "condition": json.dumps(cond), "orders": "{}"}, "orders"),
             ({"type": "two-leg", "condition": json.dumps(cond), "orders": json.dumps(one)}, "2 trigger values"),
             ({"type": "single", "condition": json.dumps({**cond, "tradingsymbol": "NOPE"}),
               "orders": json.dumps(one)}, "tradingsymbol"),
             ({"type": "single", "condition": json.dumps(cond),
               "orders": json.dumps([{**one[0], "tradingsymbol": "TCS"}])}, "instrument")]
    for body, message in cases:
        r = eventually_blocking(lambda b=body: (r := sim.post("/gtt/triggers", data=b, headers=headers))
                                .status_code != 429 and r, 10, "an answer")
        assert r.status_code == 400 and r.json()["error_type"] == "InputException", r.text
        assert message in r.json()["message"], (body, r.text)
    for call in (lambda: kite.get_gtt(999999), lambda: kite.delete_gtt(999999)):
        with pytest.raises(InputException, match="trigger_id"):
            paced(call)
    r = sim.get("/gtt/triggers")
    assert r.status_code == 403 and r.json()["error_type"] == "TokenException"


def test_a_creation_whose_answer_is_lost_still_made_the_gtt(sim, kite):
    """``lose_answer_next``: the trigger is created, then the connection drops before the answer is
    complete — the client sees a broken connection, the broker's GTT book has it."""
    before = {g["id"] for g in paced(kite.get_gtts)}
    sim.faults(lose_answer_next=1, lose_answer_on="POST /gtt/triggers")
    try:
        with pytest.raises(requests.exceptions.RequestException):  # paced: a 429 first leaves the fault unspent
            paced(lambda: kite.place_gtt(kite.GTT_TYPE_SINGLE, "INFY", "NSE", [1470.0], SPOT, [leg("SELL", 1465.0)]))
    finally:
        sim.reset_faults()
    made = [g for g in paced(kite.get_gtts) if g["id"] not in before]
    assert [(g["status"], g["condition"]["trigger_values"]) for g in made] == [("active", [1470.0])]
    assert sim.admin("faults", {})["counts"]["answer_lost"] == 1
    paced(lambda: kite.delete_gtt(made[0]["id"]))


def test_reject_the_next_n_gtt_creations_and_modifications(sim, kite):
    tid = oco(kite, 1470.0, 1560.0)
    sim.faults(reject_gtt_next=2, reject_gtt_reason="Trigger price is invalid.")
    try:
        with pytest.raises(InputException, match="Trigger price is invalid."):
            paced(lambda: kite.place_gtt(kite.GTT_TYPE_SINGLE, "INFY", "NSE", [1470.0], SPOT, [leg("SELL", 1465.0)]))
        with pytest.raises(InputException, match="Trigger price is invalid."):
            paced(lambda: kite.modify_gtt(tid, kite.GTT_TYPE_OCO, "INFY", "NSE", [1400.0, 1600.0], SPOT,
                                          [leg("SELL", 1395.0), leg("SELL", 1595.0)]))
        third = paced(lambda: kite.place_gtt(kite.GTT_TYPE_SINGLE, "INFY", "NSE", [1470.0], SPOT,
                                             [leg("SELL", 1465.0)]))["trigger_id"]  # the fault is spent
    finally:
        sim.reset_faults()
    paced(lambda: kite.delete_gtt(third))
    paced(lambda: kite.delete_gtt(tid))


def test_an_fno_trigger_expires_with_its_contract(kite):
    fut = min((i for i in paced(lambda: kite.instruments("NFO")) if i["instrument_type"] == "FUT"
               and i["name"] == "NIFTY"), key=lambda i: i["expiry"])
    px = paced(lambda: kite.ltp([f"NFO:{fut['tradingsymbol']}"]))[f"NFO:{fut['tradingsymbol']}"]["last_price"]
    stop = round(round(px * 0.9 / 0.1) * 0.1, 1)
    tid = paced(lambda: kite.place_gtt(kite.GTT_TYPE_SINGLE, fut["tradingsymbol"], "NFO", [stop], px,
                                       [leg("SELL", stop, qty=fut["lot_size"], product="NRML")]))["trigger_id"]
    assert gtt(kite, tid)["expires_at"] == f"{fut['expiry']:%Y-%m-%d} 15:30:00"
    with pytest.raises(InputException, match="NRML"):
        paced(lambda: kite.place_gtt(kite.GTT_TYPE_SINGLE, fut["tradingsymbol"], "NFO", [stop], px,
                                     [leg("SELL", stop, qty=fut["lot_size"], product="CNC")]))
    paced(lambda: kite.delete_gtt(tid))
