"""Greeks of option positions for the risk caps, against py_vollib's analytical Black-Scholes."""

import time
from datetime import date, datetime

import pytest

from shared.messages import Position
from shared.trading.greeks import RATE, NetGreeks, greeks_inputs, net_greeks, position_greeks, spot_key, unit_greeks
from shared.ist import IST
from shared.kite.models import Instrument
from tests.vollib import black_scholes
from tests.vollib import black_scholes_greeks as analytical

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=IST).timestamp()
EXPIRY = date(2026, 12, 29)
YEARS = (datetime(2026, 12, 29, 15, 30, tzinfo=IST).timestamp() - NOW) / (365 * 86400)


def option(kind: str, strike: float) -> Instrument:
    return Instrument(instrument_token=1, exchange_token=1, tradingsymbol=f"NIFTY26DEC{int(strike)}{kind}", name="NIFTY",
                      last_price=0.0, expiry=EXPIRY, strike=strike, tick_size=0.05, lot_size=65,
                      instrument_type=kind, segment="NFO-OPT", exchange="NFO")


@pytest.mark.parametrize("kind,strike,vol", [("CE", 26000.0, 0.13), ("PE", 25500.0, 0.15), ("CE", 27000.0, 0.11)])
def test_unit_greeks_at_the_implied_vol_match_py_vollib(kind, strike, vol):
    flag = kind[0].lower()
    price = black_scholes(flag, 26000.0, strike, YEARS, RATE, vol)
    delta, vega = unit_greeks(option(kind, strike), 26000.0, price, NOW)
    assert delta == pytest.approx(analytical.delta(flag, 26000.0, strike, YEARS, RATE, vol), abs=1e-4)
    assert vega == pytest.approx(analytical.vega(flag, 26000.0, strike, YEARS, RATE, vol), rel=1e-3)


def test_a_spread_nets_its_legs_and_units_scale_with_quantity():
    short, wing = option("CE", 26000.0), option("CE", 26200.0)
    prices = {f"NFO:{i.tradingsymbol}": black_scholes("c", 26000.0, i.strike, YEARS, RATE, 0.13) for i in (short, wing)}
    d_short, v_short = unit_greeks(short, 26000.0, prices[f"NFO:{short.tradingsymbol}"], NOW)
    d_wing, v_wing = unit_greeks(wing, 26000.0, prices[f"NFO:{wing.tradingsymbol}"], NOW)
    delta, vega = position_greeks([(short, -65), (wing, 65)], 26000.0, prices, NOW)
    assert delta == pytest.approx(65 * (d_wing - d_short)) and delta < 0
    assert vega == pytest.approx(65 * (v_wing - v_short))
    assert position_greeks([(short, 0)], 26000.0, prices, NOW) == (0.0, 0.0)


def test_expired_or_unpriceable_options_count_their_intrinsic_delta_only():
    itm = option("CE", 25000.0)
    delta, vega = unit_greeks(itm, 26000.0, 0.01, NOW)  # below intrinsic: no implied vol
    assert (delta, vega) == (1.0, 0.0)
    assert unit_greeks(itm, 26000.0, 1000.0, time.mktime((2027, 1, 1, 0, 0, 0, 0, 0, 0)))[0] == 1.0


def test_spot_keys():
    assert spot_key("NIFTY") == "NSE:NIFTY 50" and spot_key("SENSEX") == "BSE:SENSEX" and spot_key("INFY") == "NSE:INFY"


def test_net_greeks_price_what_is_held_and_added_and_fail_closed_without_a_price():
    short, wing = option("CE", 26000.0), option("CE", 26200.0)
    instruments = {f"NFO:{i.tradingsymbol}": i for i in (short, wing)}
    held = [Position(tradingsymbol=short.tradingsymbol, exchange="NFO", quantity=-65)]
    adding = [(f"NFO:{wing.tradingsymbol}", 65)]
    underlying, _, _, keys = greeks_inputs(instruments, held, adding)
    assert underlying == "NIFTY" and keys == sorted([f"NFO:{short.tradingsymbol}", f"NFO:{wing.tradingsymbol}",
                                                     "NSE:NIFTY 50"])
    prices = {k: int(round(black_scholes("c", 26000.0, instruments[k].strike, YEARS, RATE, 0.13) * 100))
              for k in instruments} | {"NSE:NIFTY 50": 26000_00}
    priced = net_greeks(instruments, held, adding, prices, NOW)
    assert priced.priced and priced.held["NIFTY"][0] < 0 < priced.added[0]
    unpriced = net_greeks(instruments, held, adding, {k: v for k, v in prices.items() if k != "NSE:NIFTY 50"}, NOW)
    assert unpriced == NetGreeks(underlying="NIFTY", priced=False)
    assert net_greeks(instruments, held, [("NSE:INFY", 10)], {}, NOW) == NetGreeks()  # no options: nothing to price
