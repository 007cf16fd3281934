"""Greeks and payoff of option legs, against values worked independently (intrinsic payoffs at expiry,
put-call parity, the structure's known breakevens and bounds)."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from gateway.option_book import Leg, book_greeks, breakevens, payoff
from gateway.payoff_svg import payoff_svg
from gateway.structures import StructureError, build
from shared.options.chain import IST, years_to_expiry
from shared.options.pricing import black_scholes
from shared.trading.greeks import RATE

EXPIRY = date(2026, 3, 26)
NOW = datetime(2026, 3, 2, 11, 0, tzinfo=IST).timestamp()
YEARS = years_to_expiry(EXPIRY, NOW)


def fair(kind, strike, spot, vol=0.14):
    """A price consistent across strikes (one volatility): the book prices them back to that vol."""
    return round(black_scholes("c" if kind == "CE" else "p", spot, strike, YEARS, RATE, vol), 2)


def leg(kind, strike, qty, entry, last=None, expiry=EXPIRY):
    return Leg(tradingsymbol=f"NIFTY{strike}{kind}", kind=kind, quantity=qty, entry=entry,
               last=entry if last is None else last, strike=strike, expiry=expiry)


def test_a_bull_call_spread_at_expiry_is_its_intrinsic_value():
    buy, sell = fair("CE", 24000, 24200.0), fair("CE", 24500, 24200.0)
    debit = buy - sell
    legs = [leg("CE", 24000, 75, buy), leg("CE", 24500, -75, sell)]
    curve = payoff(legs, 24200.0, NOW, span=0.05, points=101)
    for s, pnl in zip(curve["prices"], curve["expiry"]):
        intrinsic = max(0.0, s - 24000) - max(0.0, s - 24500)
        assert pnl == pytest.approx(75 * (intrinsic - debit), abs=0.02)
    assert curve["breakevens"] == [pytest.approx(24000 + debit, abs=0.5)]
    assert curve["best"]["value"] == pytest.approx(75 * (500 - debit), abs=0.5) and not curve["best"]["unbounded"]
    assert curve["worst"]["value"] == pytest.approx(-75 * debit, abs=0.5) and not curve["worst"]["unbounded"]
    # today the spread is worth less than its maximum and more than its minimum
    assert -75 * debit < min(curve["today"]) and max(curve["today"]) < 75 * (500 - debit)
    assert curve["today"][len(curve["today"]) // 2] == pytest.approx(0, abs=1)  # at the spot: what it cost


def test_a_short_straddle_is_unbounded_both_ways_and_short_vega():
    legs = [leg("CE", 24000, -75, 250.0), leg("PE", 24000, -75, 240.0)]
    curve = payoff(legs, 24000.0, NOW)
    assert curve["worst"]["unbounded"] and len(curve["breakevens"]) == 2
    low, high = curve["breakevens"]
    assert low == pytest.approx(24000 - 490, abs=1) and high == pytest.approx(24000 + 490, abs=1)
    g = book_greeks(legs, 24000.0, NOW)["total"]
    assert g["vega"] < 0 and g["theta"] > 0 and g["gamma"] < 0 and abs(g["delta"]) < 0.2 * 75


def test_greeks_of_a_synthetic_future_match_a_future():
    # long call + short put at one strike = long the underlying: delta 1 a unit, no gamma, no vega
    legs = [leg("CE", 24000, 75, fair("CE", 24000, 24050.0)), leg("PE", 24000, -75, fair("PE", 24000, 24050.0))]
    g = book_greeks(legs, 24050.0, NOW)["total"]
    assert g["delta"] == pytest.approx(75, rel=0.03) and g["gamma"] == pytest.approx(0, abs=1e-3)
    fut = book_greeks([Leg(tradingsymbol="NIFTYFUT", kind="FUT", quantity=75, entry=24050, last=24050)], 24050, NOW)
    assert fut["total"]["delta"] == 75


def test_breakevens_interpolate_and_the_svg_spans_the_box():
    assert breakevens([1, 2, 3], [-1.0, 1.0, 3.0]) == [1.5]
    curve = payoff([leg("CE", 24000, 75, 300.0)], 24000.0, NOW)
    svg = payoff_svg(curve)
    xs = [float(p.split(",")[0]) for p in svg["expiry"][1:].split(" L")]
    assert xs[0] == svg["left"] and xs[-1] == svg["right"] and svg["top"] <= svg["zero"] <= svg["bottom"]


def test_structures_on_a_chain():
    rows = [{"strike": 23800.0 + 100 * i, "atm": i == 3,
             "ce": {"tradingsymbol": f"C{i}", "ltp": 400.0 - 90 * i}, "pe": {"tradingsymbol": f"P{i}", "ltp": 80.0 + 90 * i}}
            for i in range(7)]
    chain = {"strikes": rows, "expiry": "2026-03-26", "lot_size": 75}
    condor = build(chain, "iron_condor", lots=2, steps=1, wing=2)
    assert [(l.kind, l.strike, l.quantity) for l in condor] == [
        ("CE", 24200.0, -150), ("CE", 24400.0, 150), ("PE", 24000.0, -150), ("PE", 23800.0, 150)]
    with pytest.raises(StructureError) as e:
        build(chain, "iron_condor", steps=3, wing=3)
    assert e.value.field == "steps"
    with pytest.raises(StructureError):
        build(chain, "butterfly")
