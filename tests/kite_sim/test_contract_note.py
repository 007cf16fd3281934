"""Kite's virtual contract note (``POST /charges/orders``) on a real sim with the official client: the charges
of the day's executed orders from the one charges table (shared/charges.py) at the sim's date — a delivery
buy worked out by hand from the published rates, every segment against the table, refusals naming the
field — and the margin calculators carry the same charges."""

from __future__ import annotations

from datetime import date

import pytest
from kiteconnect.exceptions import InputException

from shared.charges import order_charges, segment_of
from tests.kite_sim.kit import module_sim, paced

pytestmark = pytest.mark.timeout(120)

sim_dir, sim = module_sim("charges", seed=41)


def row(exchange: str, symbol: str, side: str, qty: int, price: float, product: str, oid: str = "1") -> dict:
    return {"order_id": oid, "exchange": exchange, "tradingsymbol": symbol, "transaction_type": side,
            "variety": "regular", "product": product, "order_type": "MARKET", "quantity": qty, "average_price": price}


def test_a_delivery_buy_as_the_rates_make_it(kite):
    (note,) = paced(lambda: kite.get_virtual_contract_note([row("NSE", "INFY", "BUY", 10, 1500.0, "CNC")]))
    assert (note["tradingsymbol"], note["quantity"], note["price"], note["product"]) == ("INFY", 10, 1500.0, "CNC")
    c = note["charges"]
    # turnover ₹15,000: STT 0.1 %, NSE 0.00307 %, SEBI ₹10 a crore, stamp 0.015 %, no brokerage, GST 18 % of the fees
    assert (c["transaction_tax_type"], c["transaction_tax"], c["brokerage"], c["stamp_duty"]) == ("stt", 15.0, 0, 2.25)
    assert c["exchange_turnover_charge"] == pytest.approx(0.4605) and c["sebi_turnover_charge"] == pytest.approx(0.015)
    assert c["gst"]["total"] == pytest.approx(0.18 * (0.4605 + 0.015))
    assert c["total"] == pytest.approx(15.0 + 0.4605 + 0.015 + 2.25 + 0.18 * 0.4755)


def test_the_days_orders_net_of_charges(sim, kite):
    """What the desk does: the day's fills from the order book, their charges from the contract note."""
    nfo = paced(lambda: kite.instruments("NFO"))
    fut = next(i for i in nfo if i["instrument_type"] == "FUT" and i["name"] == "NIFTY")
    call = min((i for i in nfo if i["instrument_type"] == "CE" and i["name"] == "NIFTY"),
               key=lambda i: (i["expiry"], i["strike"]))
    placed = [("NSE", "SBIN", "BUY", 20, "MIS"), ("NSE", "SBIN", "SELL", 20, "MIS"),
              ("NFO", fut["tradingsymbol"], "BUY", fut["lot_size"], "NRML"),
              ("NFO", call["tradingsymbol"], "BUY", call["lot_size"], "NRML")]
    ids = [paced(lambda p=p: kite.place_order("regular", p[0], p[1], p[2], p[3], p[4], "MARKET", market_protection=2))
           for p in placed]
    book = {o["order_id"]: o for o in paced(kite.orders)}
    fills = [book[i] for i in ids]
    assert all(o["status"] == "COMPLETE" for o in fills)
    notes = paced(lambda: kite.get_virtual_contract_note([
        row(o["exchange"], o["tradingsymbol"], o["transaction_type"], o["filled_quantity"], o["average_price"],
            o["product"], o["order_id"]) for o in fills]))
    today = date.fromisoformat(sim.get("/sim/clock").json()["trading_day"])
    types = {"SBIN": "EQ", fut["tradingsymbol"]: "FUT", call["tradingsymbol"]: "CE"}
    for o, note in zip(fills, notes, strict=True):
        expected = order_charges(exchange=o["exchange"], segment=segment_of(o["exchange"], types[o["tradingsymbol"]],
                                                                            o["product"]),
                                 side=o["transaction_type"], quantity=o["filled_quantity"], price=o["average_price"],
                                 on=today).as_kite()
        assert note["charges"] == expected
    intraday_buy, intraday_sell = (n["charges"] for n in notes[:2])
    assert intraday_buy["transaction_tax"] == 0 < intraday_sell["transaction_tax"]  # intraday STT on the sell only
    assert notes[3]["charges"]["brokerage"] == 20  # options: flat ₹20


def test_refusals_name_the_field(kite):
    good = row("NSE", "INFY", "BUY", 10, 1500.0, "CNC")
    for bad, field in (({"tradingsymbol": "NOPE"}, "tradingsymbol"), ({"average_price": 0}, "average_price"),
                       ({"quantity": 0}, "quantity"), ({"transaction_type": "HOLD"}, "transaction_type"),
                       ({"product": "XYZ"}, "product")):
        with pytest.raises(InputException, match=field):
            paced(lambda b=bad: kite.get_virtual_contract_note([{**good, **b}]))


def test_the_margin_calculators_carry_the_same_charges(kite):
    order = {"exchange": "NSE", "tradingsymbol": "INFY", "transaction_type": "BUY", "variety": "regular",
             "product": "CNC", "order_type": "LIMIT", "quantity": 10, "price": 1500.0}
    (margin,) = paced(lambda: kite.order_margins([order]))
    (note,) = paced(lambda: kite.get_virtual_contract_note([row("NSE", "INFY", "BUY", 10, 1500.0, "CNC")]))
    assert margin["charges"] == note["charges"]
    basket = paced(lambda: kite.basket_order_margins([order, {**order, "transaction_type": "SELL"}]))
    assert basket["charges"]["total"] == pytest.approx(sum(o["charges"]["total"] for o in basket["orders"]))
