"""The charges table against Zerodha's own figures: the brokerage calculator's totals for a round trip in
each segment, and the charge examples Kite publishes with its API (kiteconnect-mocks)."""

from __future__ import annotations

import json
from datetime import date

import pytest

from shared.charges import ChargesError, Segment, charges_paise, exercise_stt, order_charges, rates_for, segment_of

LATE_2025 = date(2025, 11, 20)


def round_trip(segment: Segment, exchange: str, on: date, buy=1000, sell=1000, qty=500) -> float:
    legs = [order_charges(exchange=exchange, segment=segment, side=side, quantity=qty, price=price, on=on)
            for side, price in (("BUY", buy), ("SELL", sell))]
    return sum(c.total for c in legs)


@pytest.mark.parametrize("segment,exchange,total", [
    # Zerodha's brokerage calculator, buy 1,000 / sell 1,000 × 500 in late 2025 (turnover ₹10 lakh)
    (Segment.EQUITY_INTRADAY, "NSE", 224.61),
    (Segment.EQUITY_DELIVERY, "NSE", 1112.41),
    (Segment.FUTURES, "NFO", 179.97),
    (Segment.OPTIONS, "NFO", 982.63),
])
def test_round_trips_match_zerodhas_calculator(segment, exchange, total):
    assert round(round_trip(segment, exchange, LATE_2025), 2) == total


def test_the_2026_budget_raises_fo_stt_from_april():
    before = order_charges(exchange="NFO", segment=Segment.OPTIONS, side="SELL", quantity=65, price=100,
                           on=date(2026, 3, 31))
    after = order_charges(exchange="NFO", segment=Segment.OPTIONS, side="SELL", quantity=65, price=100,
                          on=date(2026, 4, 1))
    assert (before.transaction_tax, after.transaction_tax) == (6.5, 9.75)  # 0.1% → 0.15% of ₹6,500 premium
    fut = order_charges(exchange="NFO", segment=Segment.FUTURES, side="SELL", quantity=65, price=26000,
                        on=date(2026, 6, 1))
    assert fut.transaction_tax == pytest.approx(845.0)  # 0.05% of ₹16.9 lakh
    assert exercise_stt(10_000, date(2026, 6, 1)) == 15  # 0.15% of the intrinsic value


def test_kites_published_examples_in_their_era(kite_mocks):
    def _mock(name: str) -> list[dict]:
        return json.loads((kite_mocks / name).read_text())["data"]

    # order_margins.json: INFY CNC buy 1 @ 1,498 (NSE at 0.00345%). Kite adds the ₹0.01 delivery
    # contract-note minimum as brokerage there; the calculator and the contract note per order do not.
    infy = _mock("order_margins.json")[0]["charges"]
    ours = order_charges(exchange="NSE", segment=Segment.EQUITY_DELIVERY, side="BUY", quantity=1, price=1498,
                         on=date(2022, 6, 1))
    assert (ours.transaction_tax, ours.exchange_turnover_charge, ours.sebi_turnover_charge, ours.stamp_duty) == \
        pytest.approx((infy["transaction_tax"], infy["exchange_turnover_charge"], infy["sebi_turnover_charge"],
                       infy["stamp_duty"]))
    assert ours.total + 0.01 * 1.18 == pytest.approx(infy["total"])
    # virtual_contract_note.json: an MCX future sold (CTT) and a NIFTY option bought
    note = {row["tradingsymbol"]: row for row in _mock("virtual_contract_note.json")}
    gold = note["GOLDPETAL23JULFUT"]
    ours = order_charges(exchange="MCX", segment=Segment.COMMODITY_FUTURES, side="SELL", quantity=1, price=5862,
                         on=date(2023, 6, 1))
    kite = ours.as_kite()
    assert kite.pop("gst") == pytest.approx(gold["charges"]["gst"])
    assert kite == pytest.approx({k: v for k, v in gold["charges"].items() if k != "gst"})
    nifty = note["NIFTY2371317900PE"]["charges"]
    ours = order_charges(exchange="NFO", segment=Segment.OPTIONS, side="BUY", quantity=100, price=1.5,
                         on=date(2022, 6, 1))
    for key in ("transaction_tax", "exchange_turnover_charge", "sebi_turnover_charge", "brokerage", "stamp_duty"):
        assert getattr(ours, key) == pytest.approx(nifty[key]), key
    # the mock's own GST is not 18% of its own components (3.613527 vs 3.613662): within a tenth of a paisa
    assert ours.gst.total == pytest.approx(nifty["gst"]["total"], abs=0.001)


def test_segments_and_paise():
    assert segment_of("NSE", "EQ", "CNC") is Segment.EQUITY_DELIVERY
    assert segment_of("NSE", "EQ", "MIS") is Segment.EQUITY_INTRADAY
    assert segment_of("NFO", "CE", "NRML") is Segment.OPTIONS
    assert segment_of("BFO", "FUT", "MIS") is Segment.FUTURES
    assert rates_for(Segment.OPTIONS, date(2020, 1, 1)).since == date(2021, 1, 1)  # older: the first era
    # intraday buy of 100 @ ₹1,500.25 today: brokerage min(45.0075, 20) + txn + SEBI + stamp 4.50 + GST
    paise = charges_paise("NSE", "EQ", "MIS", "BUY", 100, 150025, on=date(2026, 6, 1))
    turnover = 150025
    txn, sebi = turnover * 0.0000307, turnover * 0.000001
    assert paise == round((20 + txn + sebi + 4.50 + 0.18 * (20 + txn + sebi)) * 100)


@pytest.mark.parametrize("kwargs,field", [
    ({"side": "HOLD"}, "transaction_type"), ({"quantity": 0}, "quantity"), ({"price": "abc"}, "price"),
    ({"price": -1}, "price"), ({"exchange": "MCX"}, "exchange"),
])
def test_bad_input_names_the_field(kwargs, field):
    args = {"exchange": "NSE", "segment": Segment.EQUITY_INTRADAY, "side": "BUY", "quantity": 1, "price": 10,
            **kwargs}
    with pytest.raises(ChargesError) as e:
        order_charges(**args)
    assert e.value.field == field
