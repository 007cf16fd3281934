"""kite_sim margins F&O the way SPAN does, roughly: the legs on one underlying together, by their worst loss.
A trader session found every spread refused on a ₹10 lakh paper account — the sim margined each short leg as
if naked (12 % of the notional plus its premium) and gave a basket a flat 35 % off — so a bull call spread
"needed ₹77,514" and two hedged option strategies used ₹9.4 lakh. Real Kite asks a fraction of that."""

from __future__ import annotations

import pytest

from kite_sim import risk
from kite_sim.orders import paise
from tests.kite_sim.test_matching_properties import UNIVERSE, USER, make

LOT = 65


@pytest.fixture
def desk():
    broker, market, _ = make(funds=1_20_000_00)  # ₹1.2 lakh
    options = [i for i in UNIVERSE.by_token.values() if i.underlying == "NIFTY" and i.instrument_type in ("CE", "PE")]
    expiry = max(i.expiry for i in options)
    chain = {(i.strike, i.instrument_type): i for i in options if i.expiry == expiry}
    atm = round(market.spot("NIFTY") / 50) * 50
    return broker, market, chain, atm


def legs(chain, *spec):
    return [(chain[(strike, kind)], qty) for strike, kind, qty in spec]


def test_a_long_option_needs_its_premium_and_a_hedge_caps_what_a_short_needs(desk):
    _, market, chain, atm = desk
    margin = lambda *spec: risk.derivatives_margin(market, legs(chain, *spec))  # noqa: E731
    call = chain[(atm, "CE")]
    assert margin((atm, "CE", LOT)) == pytest.approx(LOT * paise(market.price(call)), abs=1)
    naked = margin((atm, "CE", -LOT))
    spread = margin((atm, "CE", LOT), (atm + 200, "CE", -LOT))
    bear_call = margin((atm, "CE", -LOT), (atm + 200, "CE", LOT))
    condor = margin((atm + 200, "CE", -LOT), (atm + 400, "CE", LOT), (atm - 200, "PE", -LOT), (atm - 400, "PE", LOT))
    strangle = margin((atm + 200, "CE", -LOT), (atm - 200, "PE", -LOT))
    assert spread < naked and bear_call < naked and condor < strangle
    # a bear call spread can lose at most its width (200 points a share): margined at most that, plus the wing's
    # premium (paid) and the short's 2 % exposure margin, nowhere near the naked short's
    exposure = risk.EXPOSURE * market.spot("NIFTY") * LOT * 100
    wing = LOT * paise(market.price(chain[(atm + 200, "CE")]))
    assert bear_call <= 200 * LOT * 100 + wing + exposure + 1 < naked


def test_an_iron_condor_placed_wings_first_fits_an_account_a_naked_strangle_does_not(desk):
    broker, market, chain, atm = desk
    condor = [(atm + 400, "CE", "BUY"), (atm - 400, "PE", "BUY"), (atm + 200, "CE", "SELL"), (atm - 200, "PE", "SELL")]
    for strike, kind, side in condor:
        inst = chain[(strike, kind)]
        o = broker.place(USER, "regular", {"exchange": "NFO", "tradingsymbol": inst.tradingsymbol, "quantity": str(LOT),
                                           "transaction_type": side, "order_type": "MARKET", "product": "NRML",
                                           "market_protection": "3"})
        assert o.status == "COMPLETE", (inst.tradingsymbol, side, o.status_message)
    acc = broker.account(USER)
    held = risk.derivative_legs(market, acc)[0]
    assert len(held) == 4 and risk.utilised(market, acc) == risk.derivatives_margin(market, held)

    # the same account cannot sell a naked strangle on top: each short alone needs more than is left
    inst = chain[(atm + 300, "CE")]
    o = broker.place(USER, "regular", {"exchange": "NFO", "tradingsymbol": inst.tradingsymbol, "quantity": str(LOT),
                                       "transaction_type": "SELL", "order_type": "MARKET", "product": "NRML",
                                       "market_protection": "3"})
    assert o.status == "REJECTED" and "Insufficient funds" in o.status_message
