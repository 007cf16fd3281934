"""eDIS / TPIN authorisation of delivery sells, on a real sim started with ``--edis DEMO01`` (an account without
DDPI): a CNC sell of delivered shares is answered HTTP 428 until the depository authorises them; the
authorisation (``POST /portfolio/holdings/authorise`` → the depository's TPIN page) covers the day's sells up
to its quantity, shows in the holdings and ends with the trading day. Intraday sells and accounts with DDPI
need none."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from kiteconnect.exceptions import GeneralException

from shared.kite import tls
from tests.helpers import eventually_blocking
from tests.kite_sim.conformance import compare
from tests.kite_sim.kit import paced, start_sim_with

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    s = start_sim_with(tmp_path_factory.mktemp("edis"), "--edis", "DEMO01", "--settle", seed=31)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def api(sim, kite):
    with httpx.Client(base_url=sim.root, headers={"X-Kite-Version": "3",
                                                  "Authorization": f"token {sim.api_key}:{kite.access_token}"},
                      verify=tls.context()) as c:
        yield c


def call(api: httpx.Client, method: str, path: str, **kw) -> httpx.Response:
    return eventually_blocking(lambda: (r := api.request(method, path, **kw)).status_code != 429 and r, 10,
                               f"{method} {path} within the rate limits")


def sell(kite, qty: int, product: str = "CNC") -> str:
    return paced(lambda: kite.place_order("regular", "NSE", "INFY", "SELL", qty, product, "MARKET",
                                          market_protection=2))


def infy(kite) -> dict:
    return next(h for h in paced(kite.holdings) if h["tradingsymbol"] == "INFY")


def authorise(sim, api, pairs: list[tuple[str, int]] | None) -> str:
    """The whole flow: ask Kite for a request, then enter the TPIN on the depository's page."""
    form = {"isin": [isin for isin, _ in pairs], "quantity": [str(q) for _, q in pairs]} if pairs else None
    r = call(api, "POST", "/portfolio/holdings/authorise", data=form)
    assert r.status_code == 200, r.text
    request_id = r.json()["data"]["request_id"]
    page = f"{sim.root}/connect/portfolio/authorise/holdings/{sim.api_key}/{request_id}"
    assert 'id="tpin"' in httpx.get(page, verify=tls.context()).text
    done = httpx.post(page, data={"tpin": "123456"}, verify=tls.context())
    assert done.status_code == 200 and "Authorised" in done.text
    return page


def test_a_delivery_sell_needs_the_days_authorisation(sim, kite, api):
    with pytest.raises(GeneralException, match="3 quantity needs authorisation at depository") as refused:
        sell(kite, 3)
    assert refused.value.code == 428
    raw = call(api, "POST", "/orders/regular", data={"exchange": "NSE", "tradingsymbol": "INFY",
                                                     "transaction_type": "SELL", "quantity": 3, "product": "CNC",
                                                     "order_type": "MARKET", "market_protection": 2})
    assert raw.status_code == 428 and raw.json()["error_type"] == "HoldingException"
    assert infy(kite)["authorised_quantity"] == 0

    isin = infy(kite)["isin"]
    page = authorise(sim, api, [(isin, 5)])
    held = infy(kite)
    today = sim.get("/sim/clock").json()["trading_day"]
    assert (held["authorised_quantity"], held["authorised_date"]) == (5, f"{today} 00:00:00")
    assert httpx.post(page, data={"tpin": "123456"}, verify=tls.context()).status_code == 404  # a request is used once

    first = sell(kite, 3)
    assert paced(lambda: kite.order_history(first))[-1]["status"] == "COMPLETE"
    with pytest.raises(GeneralException, match="1 quantity needs authorisation"):  # 2 of the 5 are left
        sell(kite, 3)
    second = sell(kite, 2)
    assert paced(lambda: kite.order_history(second))[-1]["status"] == "COMPLETE"
    intraday = sell(kite, 1, product="MIS")  # not a delivery sell: nothing to authorise
    assert paced(lambda: kite.order_history(intraday))[-1]["status"] == "COMPLETE"


def test_authorising_everything_and_the_authorisation_ending_with_the_day(sim, kite, api):
    authorise(sim, api, None)  # no isin: every holding
    held = {h["tradingsymbol"]: h for h in paced(kite.holdings)}
    assert held["ITC"]["authorised_quantity"] == held["ITC"]["quantity"] == 100
    done = paced(lambda: kite.place_order("regular", "NSE", "ITC", "SELL", 10, "CNC", "MARKET", market_protection=2))
    assert paced(lambda: kite.order_history(done))[-1]["status"] == "COMPLETE"

    stale = call(api, "POST", "/portfolio/holdings/authorise").json()["data"]["request_id"]
    before = sim.get("/sim/clock").json()["trading_day"]
    sim.admin("advance", {"seconds": 22500})
    eventually_blocking(lambda: sim.get("/sim/clock").json()["trading_day"] != before, 10, "a new day")
    assert sim.get(f"/connect/portfolio/authorise/holdings/{sim.api_key}/{stale}").status_code == 404
    assert {h["tradingsymbol"]: h["authorised_quantity"] for h in paced(kite.holdings)}["ITC"] == 0
    with pytest.raises(GeneralException, match="quantity needs authorisation"):
        paced(lambda: kite.place_order("regular", "NSE", "ITC", "SELL", 10, "CNC", "MARKET", market_protection=2))


def test_bad_authorisation_requests(sim, kite, api):
    unknown = call(api, "POST", "/portfolio/holdings/authorise", data={"isin": "INE000000000", "quantity": "1"})
    assert unknown.status_code == 400 and "isin" in unknown.json()["message"]
    r = call(api, "POST", "/portfolio/holdings/authorise", data={"isin": infy(kite)["isin"], "quantity": "x"})
    assert r.status_code == 400 and "quantity" in r.json()["message"]
    assert sim.get(f"/connect/portfolio/authorise/holdings/{sim.api_key}/nope").status_code == 404
    assert sim.post("/connect/portfolio/authorise/holdings/other-app/nope").status_code == 404


def test_a_gtt_selling_unauthorised_shares_fails_when_it_fires(sim, kite):
    sim.admin("price", {"underlying": "INFY", "price": 1500.0})
    try:
        tid = paced(lambda: kite.place_gtt(kite.GTT_TYPE_SINGLE, "INFY", "NSE", [1480.0], 1500.0, [
            {"transaction_type": "SELL", "quantity": 1, "order_type": "LIMIT", "product": "CNC", "price": 1470.0}]))[
            "trigger_id"]
        sim.admin("price", {"underlying": "INFY", "price": 1475.0})
        fired = eventually_blocking(lambda: (g := paced(lambda: kite.get_gtt(tid)))["status"] == "triggered" and g,
                                    20, "the GTT to fire")
        outcome = fired["orders"][0]["result"]["order_result"]
        assert outcome["status"] == "failed" and "needs authorisation at depository" in outcome["rejection_reason"]
    finally:
        sim.admin("price", {"underlying": "INFY", "price": None})


def test_an_account_with_ddpi_needs_nothing(sim, kite):
    sim.admin("accounts", {"user_id": "DEMO01", "edis": False})
    try:
        done = paced(lambda: kite.place_order("regular", "NSE", "RELIANCE", "SELL", 1, "CNC", "MARKET",
                                              market_protection=2))
        assert paced(lambda: kite.order_history(done))[-1]["status"] == "COMPLETE"
    finally:
        sim.admin("accounts", {"user_id": "DEMO01", "edis": True})
    r = sim.post("/sim/accounts", json={"user_id": "NOBODY", "edis": True})
    assert r.status_code == 400 and re.search("user", r.text)


def itc(kite, side: str, qty: int) -> str:
    oid = paced(lambda: kite.place_order("regular", "NSE", "ITC", side, qty, "CNC", "MARKET", market_protection=2))
    assert paced(lambda: kite.order_history(oid))[-1]["status"] == "COMPLETE"
    return oid


def next_day(sim) -> None:
    """The market's next trading day, settled: the broker's roll (listed_day) runs the settlement in the same step,
    while the clock's trading_day moves before it."""
    before = sim.get("/sim/clock").json()["listed_day"]
    sim.admin("advance", {"seconds": 22500})
    eventually_blocking(lambda: sim.get("/sim/clock").json()["listed_day"] != before, 10, "a settled day")


def test_shares_bought_today_or_t1_sell_without_a_tpin_and_holdings_count_what_was_sold(sim, kite, kite_mocks):
    """Kite asks the depository only for shares a sell takes out of the demat account: a CNC sell of the day's
    CNC buy (intraday) or of T1 shares (BTST) needs no authorisation; ``used_quantity`` counts the holding
    sold today, in the official mock's shape."""
    mock = json.loads((kite_mocks / "holdings.json").read_text())["data"][0]
    demat = {h["tradingsymbol"]: h for h in paced(kite.holdings)}["ITC"]
    assert demat["authorised_quantity"] == 0 and demat["t1_quantity"] == 0 and demat["quantity"] > 10
    itc(kite, "BUY", 5)
    itc(kite, "SELL", 5)  # today's own shares: no 428
    row = {h["tradingsymbol"]: h for h in paced(kite.holdings)}["ITC"]
    assert row["used_quantity"] == 0 and row["quantity"] == demat["quantity"]
    with pytest.raises(GeneralException, match="1 quantity needs authorisation at depository"):
        itc(kite, "SELL", 1)  # the demat account's: needs the TPIN

    itc(kite, "BUY", 4)
    next_day(sim)
    row = {h["tradingsymbol"]: h for h in paced(kite.holdings)}["ITC"]
    assert (row["t1_quantity"], row["quantity"], row["used_quantity"]) == (4, demat["quantity"], 0)
    itc(kite, "SELL", 4)  # BTST: T1 shares are not in the demat account yet
    row = {h["tradingsymbol"]: h for h in paced(kite.holdings)}["ITC"]
    assert (row["used_quantity"], row["t1_quantity"], row["quantity"]) == (4, 4, demat["quantity"])
    assert compare(mock, row) == []  # the official mock's keys and JSON types
    with pytest.raises(GeneralException, match="1 quantity needs authorisation at depository"):
        itc(kite, "SELL", 1)
