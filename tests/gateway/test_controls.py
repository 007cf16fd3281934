"""The operator's controls through the real stack: risk limits edited on the dashboard and by the API are
in force for the very next signal, and a bad value is named next to its field."""

from __future__ import annotations

import re
import time

import pytest

from shared import messages as m
from shared import subjects
from tests.execution_worker.kit import signal
from tests.gateway.test_books import trader  # noqa: F401 - the logged-in, Kite-connected client
from tests.helpers import eventually

pytestmark = pytest.mark.slow(seconds=15)


def hx(csrf: str) -> dict[str, str]:
    return {"HX-Request": "true", "X-CSRFToken": csrf}


async def test_limits_edited_on_the_dashboard_hold_for_the_next_signal(trader, bus):  # noqa: F811
    client, csrf = trader
    form = (await client.get("/ui/limits", headers=hx(csrf))).text
    values = dict(re.findall(r'name="(\w+)" value="([^"]*)"', form))
    assert values["max_daily_loss"] and values["max_position_qty"]
    r = await client.post("/ui/limits", headers=hx(csrf), data={**values, "max_position_qty": "0",
                                                                "max_daily_loss": "lots"})
    assert 'id="error-limit-max_position_qty"' in r.text and 'id="error-limit-max_daily_loss"' in r.text
    assert 'value="lots"' in r.text and 'id="limits-saved"' not in r.text
    r = await client.post("/ui/limits", headers=hx(csrf), data={**values, "max_position_qty": "3",
                                                                "max_daily_loss": "25000"})
    assert 'id="limits-saved"' in r.text and r.headers["HX-Trigger"] == "kta:status"
    limits = (await client.get("/api/risk/limits")).json()["limits"]
    assert limits["max_position_qty"] == 3 and limits["max_daily_loss"] == 25_000_00
    assert "₹25,000.00" in (await client.get("/ui/risk", headers=hx(csrf))).text

    big = signal("limits-big", qty=5, strategy_id="limits-test")
    await bus.js_publish(subjects.signals("DEMO01"), big, msg_id=big.id)

    async def decided():
        signals = (await client.get("/api/journal", params={"limit": 200})).json()["signals"]
        return next((s for s in signals if s["id"] == big.id), None)
    row = await eventually(decided, 30, "the big signal decided")
    assert (row["decision"], row["code"]) == ("refused", "POSITION_SIZE")  # the new limit, at once

    r = await client.put("/api/risk/limits", headers={"X-CSRF-Token": csrf}, json={"max_position_qty": 0})
    assert r.status_code == 400 and "max_position_qty" in r.text
    r = await client.put("/api/risk/limits", headers={"X-CSRF-Token": csrf}, json={"max_position_qty": 100})
    assert r.status_code == 200 and (await client.get("/api/risk/limits")).json()["limits"]["max_position_qty"] == 100


async def test_option_book_greeks_and_payoff_of_a_held_call_and_a_what_if_structure(trader, bus):  # noqa: F811
    client, csrf = trader
    chain = (await client.get("/api/option-chain", params={"underlying": "NIFTY"})).json()
    atm = next(r for r in chain["strikes"] if r["atm"])
    ce = atm["ce"]
    buy = m.Signal(id="opt-buy-1", user_id="DEMO01", strategy_id="opt-test", strategy="manual",
                   exchange=m.Exchange.NFO, tradingsymbol=ce["tradingsymbol"], instrument_token=ce["instrument_token"],
                   transaction_type=m.TransactionType.BUY, quantity=chain["lot_size"], product=m.Product.NRML,
                   # at the market (with the worker's market protection): a limit at the chain's ask went stale on
                   # its way under load (2 s = two minutes of a 60x market) and rested a sim hour unfilled
                   order_type=m.OrderType.MARKET, created_at=time.time_ns())
    await bus.js_publish(subjects.signals("DEMO01"), buy, msg_id=buy.id)

    async def done():
        orders = (await client.get("/api/orders", params={"strategy": "opt-test"})).json()["items"]
        return orders if orders and orders[0]["status"] in ("COMPLETE", "REJECTED", "CANCELLED") else None
    (order,) = await eventually(done, 60, "the call's order settled")
    assert order["status"] == "COMPLETE", order["status_message"]  # the broker's words if not

    async def held():
        book = (await client.get("/api/options/book")).json()
        return book if book["underlyings"] and book["strategies"] else None  # the broker's book, the journal's fill
    book = await eventually(held, 60, "the call in the option book")
    (nifty,) = book["underlyings"]
    assert nifty["underlying"] == "NIFTY" and [l["tradingsymbol"] for l in nifty["greeks"]["legs"]] == [ce["tradingsymbol"]]
    assert 0 < nifty["greeks"]["total"]["delta"] < chain["lot_size"]  # a long call: between 0 and 1 a unit
    assert nifty["greeks"]["total"]["theta"] < 0 < nifty["greeks"]["total"]["vega"]
    assert nifty["payoff"]["worst"]["value"] < 0 and nifty["payoff"]["best"]["unbounded"]
    assert "opt-test" in book["strategies"]
    mine = (await client.get("/api/options/book", params={"strategy": "opt-test"})).json()
    assert mine["underlyings"][0]["greeks"]["legs"][0]["strategy"] == "opt-test"
    assert (await client.get("/api/options/book", params={"strategy": "nope"})).json()["underlyings"] == []
    html = (await client.get("/ui/options/book", headers=hx(csrf))).text
    assert '<svg class="payoff"' in html and 'data-underlying="NIFTY"' in html and "<script" not in html

    # the furthest expiry: on an expiry afternoon the nearest one's wings are all at the 5-paise floor (no credit)
    st = (await client.get("/api/options/structure", params={"structure": "iron_condor", "lots": 2,
                                                             "expiry": chain["expiries"][-1]})).json()
    assert [l["quantity"] for l in st["legs"]] == [-2 * chain["lot_size"], 2 * chain["lot_size"]] * 2
    assert st["premium"] > 0 and len(st["payoff"]["breakevens"]) == 2  # a credit, two breakevens
    assert not st["payoff"]["worst"]["unbounded"]  # defined risk
    r = await client.get("/api/options/structure", params={"structure": "butterfly"})
    assert r.status_code == 400 and r.json()["field"] == "structure"
    html = (await client.get("/ui/options/structure", headers=hx(csrf), params={"structure": "bull_call_spread",
                                                                                "steps": "x"})).text
    assert 'id="structure-error"' in html and "steps" in html
