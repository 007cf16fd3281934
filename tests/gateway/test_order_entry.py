"""The trader's own orders and the operator's buttons through the real stack (gateway, the three workers,
kite_sim): a form error and a risk refusal shown next to their field, an order accepted, modified and
cancelled from the order book, Halt now, Square off all, and Stop's choice for open positions."""

from __future__ import annotations

import re

import pytest

from tests.gateway.test_books import trader  # noqa: F401 - the logged-in, Kite-connected client
from tests.gateway.test_controls import hx
from tests.helpers import eventually

pytestmark = pytest.mark.slow(seconds=14)


def order_form(**fields) -> dict:
    return {"symbol": "NSE:INFY", "transaction_type": "BUY", "lots": "1", "product": "MIS", "order_type": "MARKET",
            "price": "", "stop_loss": "", "target": "", "intent": "entry", **fields}


async def last_price(client, symbol="NSE:INFY") -> float:
    scan = (await client.get("/api/scanner", params={"symbols": symbol, "min_price": 0})).json()
    return scan["rows"][0]["last_price"]


async def book_row(client, tag: str) -> dict | None:
    items = (await client.get("/api/orders", params={"limit": 200, "strategy": "manual"})).json()["items"]
    return next((o for o in items if o["tag"] == tag), None)


async def test_order_entry_refusal_accept_modify_cancel_halt_square_off(trader):  # noqa: F811
    client, csrf = trader
    page = (await client.get("/orders")).text
    assert 'id="order-form"' in page and 'id="order-symbol-search"' in page
    results = (await client.get("/ui/order-entry/search", params={"q": "INFY"}, headers=hx(csrf))).text
    assert "/ui/order-entry?symbol=NSE%3AINFY" in results
    picked = (await client.get("/ui/order-entry", params={"symbol": "NSE:INFY"}, headers=hx(csrf))).text
    assert "<b>NSE:INFY</b>" in picked and 'value="NSE:INFY"' in picked

    # the form's own checks: every bad field named
    r = await client.post("/ui/order-entry", headers=hx(csrf), data=order_form(symbol="", lots="0", order_type="LIMIT"))
    for field in ("symbol", "lots", "price"):
        assert f'id="error-order-{field}"' in r.text, field
    r = await client.post("/ui/order-entry", headers=hx(csrf), data=order_form(order_type="SL-M", price="1500"))
    for field in ("trigger_price", "price"):  # an SL-M waits for a trigger and has no price of its own
        assert f'id="error-order-{field}"' in r.text, field
    r = await client.post("/ui/order-entry", headers=hx(csrf), data=order_form(order_type="SL", price="1500",
                                                                               trigger_price="1510"))
    assert re.search(r'id="error-order-price">[^<]*at or above its trigger', r.text), refusal_of(r.text)
    below = f"{round(await last_price(client) * 0.9 / 0.05) * 0.05:.2f}"  # Kite's RMS: a BUY stop above the market
    r = await client.post("/ui/order-entry", headers=hx(csrf), data=order_form(order_type="SL-M", trigger_price=below))
    assert re.search(r'id="error-order-trigger_price">[^<]*above the last price', r.text), refusal_of(r.text)
    # risk's refusal, next to the field it is about
    await client.put("/api/risk/limits", headers={"X-CSRF-Token": csrf}, json={"max_position_qty": 3})
    r = await client.post("/ui/order-entry", headers=hx(csrf), data=order_form(lots="5"))
    assert re.search(r'id="error-order-lots">[^<]*(POSITION|position|limit)', r.text), r.text[-1500:]
    assert 'id="order-placed"' not in r.text and 'value="5"' in r.text
    # (the module's other tests leave positions at the broker: the rest of the test runs with room for them)
    await client.put("/api/risk/limits", headers={"X-CSRF-Token": csrf}, json={"max_position_qty": 1000})

    # accepted: a LIMIT below the market rests at the broker
    ltp = await last_price(client)
    price = f"{round(ltp * 0.97 / 0.05) * 0.05:.2f}"
    r = await client.post("/ui/order-entry", headers=hx(csrf), data=order_form(order_type="LIMIT", price=price))
    assert 'id="order-placed"' in r.text, refusal_of(r.text)
    assert r.headers["HX-Trigger"] == "kta:orders, kta:status"
    row = await eventually(lambda: _open(client), 30, "the manual order resting OPEN")
    tag = row["tag"]
    page = (await client.get("/orders", params={"strategy": "manual"})).text
    assert f'id="modify-{tag}"' in page and f'id="cancel-{tag}"' in page
    form = (await client.get(f"/ui/orders/{tag}/modify", params={"quantity": 1, "price": price}, headers=hx(csrf))).text
    assert f'id="modify-form-{tag}"' in form
    r = await client.post(f"/ui/orders/{tag}/modify", headers=hx(csrf), data={"price": "abc", "quantity": "1"})
    assert f'id="error-m-price"' in r.text
    lower = f"{round(ltp * 0.96 / 0.05) * 0.05:.2f}"
    r = await client.post(f"/ui/orders/{tag}/modify", headers=hx(csrf), data={"price": lower, "quantity": "1"})
    assert f'id="note-{tag}"' in r.text and "modification sent" in r.text
    await eventually(lambda: _price_is(client, tag, round(float(lower) * 100)), 30, "the new price at the broker")
    r = await client.post(f"/ui/orders/{tag}/cancel", headers=hx(csrf))
    assert "cancel sent" in r.text
    await eventually(lambda: _status_is(client, tag, "CANCELLED"), 30, "the order cancelled")

    # Halt now: the kill switch HALTED by hand; the next entry is refused in words
    r = await client.post("/ui/halt", headers=hx(csrf))
    assert 'id="control-note"' in r.text and 'id="kill-switch-state">Halted<' in r.text
    r = await client.post("/ui/order-entry", headers=hx(csrf), data=order_form())
    refusal = re.search(r'<div class="error-box" role="alert">([^<]*)</div>', r.text)
    assert 'id="order-placed"' not in r.text and refusal and "HALTED" in refusal.group(1).upper(), r.text[-800:]
    await client.post("/ui/risk/reset", headers=hx(csrf))

    # Square off all: a filled position is closed
    held = await _manual_infy(client)
    r = await client.post("/ui/order-entry", headers=hx(csrf), data=order_form())
    assert 'id="order-placed"' in r.text, refusal_of(r.text)
    await eventually(lambda: _held(client, held + 1), 30, "the manual INFY position")
    r = await client.post("/ui/square-off", headers=hx(csrf))
    assert 'id="control-note"' in r.text and "trading halted" in r.text and "being closed" in r.text
    assert "New entries stay off until you reset the kill switch." in r.text
    assert ">square off all: from the dashboard</div>" in r.text  # the switch's reason, said once
    assert 'id="kill-switch-state">Halted<' in r.text  # flat and staying flat: entries off until the reset
    await eventually(lambda: _held(client, 0), 30, "INFY squared off")
    await client.post("/ui/risk/reset", headers=hx(csrf))

    # Stop with "square them off": no position is left
    r = await client.post("/ui/order-entry", headers=hx(csrf), data=order_form())
    await eventually(lambda: _held(client, 1), 30, "the manual INFY position again")
    r = await client.post("/ui/live/stop", headers=hx(csrf), data={"positions": "square_off"})
    assert "open positions squared off" in r.text
    await eventually(lambda: _held(client, 0), 30, "INFY squared off by Stop")


def refusal_of(html: str) -> str:
    """The form's errors, for a failing assertion's message."""
    return " | ".join(re.findall(r'class="(?:error-box|field-error)"[^>]*>([^<]*)<', html)) or html[-1500:]


async def _open(client):
    items = (await client.get("/api/orders", params={"limit": 50, "strategy": "manual", "status": "open"})).json()["items"]
    return next((o for o in items if o["status"] == "OPEN"), None)


async def _price_is(client, tag, paise):
    row = await book_row(client, tag)
    return row and row["price"] == paise


async def _status_is(client, tag, status):
    row = await book_row(client, tag)
    return row and row["status"] == status


async def _manual_infy(client) -> int:
    pnl = (await client.get("/api/pnl")).json()
    manual = next((r for r in pnl["strategies"] if r["strategy"] == "manual"), None)
    return sum(p["quantity"] for p in manual["positions"] if p["tradingsymbol"] == "INFY") if manual else 0


async def _held(client, qty):
    return await _manual_infy(client) == qty


async def test_a_held_delivery_sell_links_the_depository_and_can_be_withdrawn_from_the_order_book(trader, gw_sim):  # noqa: F811
    """An account without DDPI: a manual delivery sell of demat shares waits HELD for the TPIN. The trader reads
    the depository's link as a link (the form's answer, the order book) and, as the alert says, can cancel the
    held order from the order book (it has no broker order id: the book showed it with no buttons)."""
    client, csrf = trader
    gw_sim.admin("accounts", {"user_id": "DEMO01", "edis": True})
    try:
        await client.get("/ui/order-entry/search", params={"q": "INFY"}, headers=hx(csrf))  # the instrument list
        r = await client.post("/ui/order-entry", headers=hx(csrf),
                              data=order_form(transaction_type="SELL", product="CNC", lots="2"))
        assert 'id="order-placed"' in r.text and "HELD" in r.text, refusal_of(r.text)
        link = re.search(r'<a href="(https?://[^"]+/connect/portfolio/authorise/holdings/[^"]+)"', r.text)
        assert link, r.text[-1500:]
        held = await eventually(lambda: _in_state(client, "HELD"), 30, "the sell held for the depository")
        tag = held["tag"]
        page = (await client.get("/orders", params={"strategy": "manual"})).text
        assert f'id="cancel-{tag}"' in page and f'id="modify-{tag}"' in page
        assert f'<a href="{link.group(1)}"' in page
        r = await client.post(f"/ui/orders/{tag}/cancel", headers=hx(csrf))
        assert "cancel sent" in r.text, r.text
        withdrawn = await eventually(lambda: _in_state(client, "FAILED"), 30, "the held sell withdrawn")
        assert withdrawn["tag"] == tag and not withdrawn["order_id"]
        assert withdrawn["status"] == "CANCELLED"  # the trader's cancel, never at the broker: not "REJECTED"

        async def titles():
            alerts = (await client.get("/api/alerts")).json()
            return [a["title"] for a in (alerts if isinstance(alerts, list) else alerts.get("alerts", []))]
        await eventually(lambda: _said(titles, "INFY: manual order cancelled"), 30, "the alert of the withdrawn sell")
        assert "INFY: manual order rejected" not in await titles()
    finally:
        gw_sim.admin("accounts", {"user_id": "DEMO01", "edis": False})


async def _said(titles, title: str) -> bool:
    return title in await titles()


async def _in_state(client, state: str):
    items = (await client.get("/api/orders", params={"limit": 50, "strategy": "manual"})).json()["items"]
    return next((o for o in items if o["state"] == state and o["product"] == "CNC"), None)


async def test_a_limit_outside_the_circuit_band_is_refused_before_the_broker_naming_price_and_the_band(trader):  # noqa: F811
    """Kite rejects a LIMIT priced outside the day's circuit band: kta refuses it first (risk, once the band is
    known from the quote), as a 400 naming ``price`` with the band, on the JSON API and next to the form's field."""
    client, csrf = trader
    ltp = await last_price(client)
    far = round(ltp * 1.5 / 0.05) * 5  # paise, far above any band
    r = await client.post("/api/orders", headers={"X-CSRF-Token": csrf}, json={
        "exchange": "NSE", "tradingsymbol": "INFY", "transaction_type": "BUY", "quantity": 1, "product": "MIS",
        "order_type": "LIMIT", "price": far, "client_id": "band-api"})
    body = r.json()
    assert r.status_code == 400 and body["field"] == "price" and body["error"] == "PRICE_OUTSIDE_BAND", body
    assert re.search(r"outside today's circuit band ₹[\d,.]+–₹[\d,.]+", body["detail"]), body
    await client.get("/ui/order-entry/search", params={"q": "INFY"}, headers=hx(csrf))  # the trader picks it
    r = await client.post("/ui/order-entry", headers=hx(csrf), data=order_form(order_type="LIMIT",
                                                                               price=f"{far / 100:.2f}"))
    assert re.search(r'id="error-order-price">[^<]*circuit band ₹', r.text), refusal_of(r.text)
    # the trader's refusal in the trader's words: which worker judged it is kta's business
    assert re.search(r'id="error-order-price">INFY: BUY limit price', r.text), refusal_of(r.text)
    assert not [o for o in (await client.get("/api/orders", params={"limit": 200, "strategy": "manual"})).json()["items"]
                if o["price"] == far]  # nothing reached the broker or the book

    # a resting LIMIT moved outside the band is refused the same way (it was the broker's refusal, named 'tag')
    inside = round(ltp * 0.97 / 0.05) * 5
    r = await client.post("/api/orders", headers={"X-CSRF-Token": csrf}, json={
        "exchange": "NSE", "tradingsymbol": "INFY", "transaction_type": "BUY", "quantity": 1, "product": "MIS",
        "order_type": "LIMIT", "price": inside, "client_id": "band-modify"})
    assert r.status_code == 201, r.text
    tag = r.json()["orders"][0]["tag"]
    await eventually(lambda: _price_is(client, tag, inside), 30, "the LIMIT resting at the broker")
    r = await client.patch(f"/api/orders/{tag}", headers={"X-CSRF-Token": csrf}, json={"price": far})
    body = r.json()
    assert r.status_code == 400 and body["field"] == "price" and "circuit band" in body["detail"], body
    assert (await book_row(client, tag))["price"] == inside
    assert (await client.delete(f"/api/orders/{tag}", headers={"X-CSRF-Token": csrf})).status_code < 300
