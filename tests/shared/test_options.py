"""Option analytics against independent references: prices and greeks vs py_vollib as hypothesis
properties (deep ITM/OTM, expiry day), the IV solver's round trips and refusals, the implied forward,
chains built from kite_sim's real instrument list, and the OI tracker vs a recomputation."""

import math
from datetime import date, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kite_sim.instruments import Universe
from shared.ist import IST
from shared.kite.models import Instrument
from shared.options.chain import RATE, build_chains, nearest_chain, years_to_expiry
from shared.options.iv import IVError, implied_vol_black76, implied_vol_bs
from shared.options.oi import OITracker
from shared.options.pricing import black76, black_scholes, greeks_black76, greeks_bs, implied_forward
from tests.vollib import black as vl_black
from tests.vollib import black_greeks as vl_b76g
from tests.vollib import black_iv as vl_b76_iv
from tests.vollib import black_scholes as vl_bs
from tests.vollib import black_scholes_greeks as vl_bsg

YEAR_MIN = 1 / (365 * 24 * 60)


def cases():
    """(flag, underlying, strike, t, r, vol): moneyness from deep ITM to deep OTM, t down to a few
    minutes before expiry (expiry day) and up to a year."""
    return st.tuples(st.sampled_from(["c", "p"]), st.floats(50, 60000), st.floats(-0.5, 0.5),
                     st.sampled_from([5 * YEAR_MIN, 60 * YEAR_MIN, 1 / 365, 7 / 365, 30 / 365, 1.0]),
                     st.floats(0, 0.1), st.floats(0.05, 0.9)).map(
        lambda c: (c[0], c[1], c[1] * math.exp(c[2]), c[3], c[4], c[5]))


PROPERTY = settings(max_examples=300, deadline=None, derandomize=True)  # as many cases as the old grid, reproducible


def close(a: float, b: float, scale: float) -> bool:
    """1e-9 relative, with an absolute floor tied to the underlying's size (a deep-OTM price of
    1e-200 vs 0 is a match)."""
    return abs(a - b) <= 1e-9 * max(abs(a), abs(b)) + 1e-12 * scale


@PROPERTY
@given(cases())
def test_black_scholes_price_and_greeks_match_vollib(case):
    flag, s, k, t, r, vol = case
    assert close(black_scholes(flag, s, k, t, r, vol), vl_bs(flag, s, k, t, r, vol), s)
    g = greeks_bs(flag, s, k, t, r, vol)
    assert close(g.delta, float(vl_bsg.delta(flag, s, k, t, r, vol)), 1)
    assert close(g.gamma, float(vl_bsg.gamma(flag, s, k, t, r, vol)), 1 / s)
    assert close(g.theta, float(vl_bsg.theta(flag, s, k, t, r, vol)), s)
    assert close(g.vega, float(vl_bsg.vega(flag, s, k, t, r, vol)), s)


@PROPERTY
@given(cases())
def test_black76_price_and_greeks_match_vollib(case):
    flag, f, k, t, r, vol = case
    assert close(black76(flag, f, k, t, r, vol), vl_black(flag, f, k, t, r, vol), f)
    g = greeks_black76(flag, f, k, t, r, vol)
    assert close(g.delta, float(vl_b76g.delta(flag, f, k, t, r, vol)), 1)
    assert close(g.gamma, float(vl_b76g.gamma(flag, f, k, t, r, vol)), 1 / f)
    assert close(g.theta, float(vl_b76g.theta(flag, f, k, t, r, vol)), f)
    assert close(g.vega, float(vl_b76g.vega(flag, f, k, t, r, vol)), f)


def test_at_expiry_price_is_intrinsic_and_delta_is_a_step():
    assert black76("c", 105, 100, 0, 0.05, 0.2) == 5.0
    assert black76("p", 105, 100, 0, 0.05, 0.2) == 0.0
    assert black_scholes("p", 95, 100, 0, 0.05, 0.2) == 5.0
    assert greeks_bs("c", 105, 100, 0, 0.05, 0.2).delta == 1.0
    assert greeks_bs("p", 105, 100, 0, 0.05, 0.2).delta == 0.0
    assert greeks_bs("p", 95, 100, 0, 0.05, 0.2).delta == -1.0


# ---- implied volatility -----------------------------------------------------------------------

@settings(max_examples=200, deadline=None, derandomize=True)
@given(cases())
def test_iv_round_trip_price_to_iv_to_price(case):
    flag, f, k, t, r, vol = case
    price = black76(flag, f, k, t, r, vol)
    df = math.exp(-r * t)
    intrinsic = df * max(0.0, f - k if flag == "c" else k - f)
    if price - intrinsic < 1e-9 * f:
        # no time value left in double precision: no vol is identifiable, only the price matters
        return
    iv = implied_vol_black76(price, flag, f, k, t, r)
    assert abs(black76(flag, f, k, t, r, iv) - price) <= 1e-9 * price + 1e-10 * f
    vega = greeks_black76(flag, f, k, t, r, vol).vega * 100
    if vega > 1e-6 * f:  # where the price is sensitive to vol, the vol itself comes back
        assert iv == pytest.approx(vol, rel=1e-6)
        assert iv == pytest.approx(vl_b76_iv(price, f, k, r, t, flag), rel=1e-6)


@pytest.mark.parametrize("flag,f,k,t", [
    ("c", 26000, 18000, 30 / 365),  # deep ITM call
    ("p", 26000, 34000, 30 / 365),  # deep ITM put
    ("c", 26000, 30000, 7 / 365),  # deep OTM call
    ("p", 26000, 22000, 7 / 365),  # deep OTM put
    ("c", 26000, 26050, 10 * YEAR_MIN),  # ten minutes before expiry
    ("p", 26000, 25950, 2 * YEAR_MIN),  # two minutes before expiry
])
def test_iv_solver_on_the_hard_cases(flag, f, k, t):
    vol = 0.4
    price = black76(flag, f, k, t, RATE, vol)
    iv = implied_vol_black76(price, flag, f, k, t, RATE)
    assert black76(flag, f, k, t, RATE, iv) == pytest.approx(price, rel=1e-8, abs=1e-9)
    assert iv == pytest.approx(vol, rel=1e-5)


def test_iv_of_a_spot_price_goes_through_the_forward():
    price = black_scholes("c", 1500, 1550, 20 / 365, 0.07, 0.27)
    assert implied_vol_bs(price, "c", 1500, 1550, 20 / 365, 0.07) == pytest.approx(0.27, rel=1e-8)


def test_prices_no_volatility_can_produce_are_refused():
    f, k, t, r = 26000, 25000, 7 / 365, RATE
    intrinsic = math.exp(-r * t) * (f - k)
    with pytest.raises(IVError, match="arbitrage bounds"):
        implied_vol_black76(intrinsic - 1, "c", f, k, t, r)  # below intrinsic
    with pytest.raises(IVError, match="arbitrage bounds"):
        implied_vol_black76(-0.5, "p", f, 24000, t, r)  # negative
    with pytest.raises(IVError, match="arbitrage bounds"):
        implied_vol_black76(f, "c", f, k, t, r)  # worth more than the forward itself
    with pytest.raises(IVError, match="expired"):
        implied_vol_black76(100, "c", f, k, 0, r)
    with pytest.raises(IVError, match="500%"):
        implied_vol_black76(4000, "c", f, 26000, 1 / 365, r)  # an ATM one-day option at 4000


# ---- implied forward --------------------------------------------------------------------------

def test_implied_forward_from_put_call_parity():
    rng = np.random.default_rng(2)
    for _ in range(50):
        f, k = rng.uniform(20000, 60000), rng.uniform(20000, 60000)
        t, vol = rng.uniform(1 / 365, 0.5), rng.uniform(0.08, 0.5)
        c, p = vl_black("c", f, k, t, RATE, vol), vl_black("p", f, k, t, RATE, vol)
        assert implied_forward(c, p, k, t, RATE) == pytest.approx(f, rel=1e-10)


# ---- chains from the instrument list ----------------------------------------------------------

SIM_DAY = date(2026, 11, 24)


def sim_instruments(day: date = SIM_DAY) -> list[Instrument]:
    """kite_sim's instrument universe for ``day``, as the KiteClient would parse it."""
    return [Instrument(instrument_token=i.instrument_token, exchange_token=i.exchange_token,
                       tradingsymbol=i.tradingsymbol, name=i.name, last_price=0.0, expiry=i.expiry,
                       strike=i.strike, tick_size=i.tick_size, lot_size=i.lot_size,
                       instrument_type=i.instrument_type, segment=i.segment, exchange=i.exchange)
            for i in Universe(day).by_token.values()]


def test_chains_are_grouped_by_expiry_with_paired_strikes():
    instruments = sim_instruments()
    for name in ("NIFTY", "BANKNIFTY", "SENSEX"):
        chains = build_chains(instruments, name)
        options = [i for i in instruments if i.name == name and i.instrument_type in ("CE", "PE")]
        assert sorted(chains) == sorted({i.expiry for i in options})
        for expiry, chain in chains.items():
            mine = [i for i in options if i.expiry == expiry]
            assert [s.strike for s in chain.strikes] == sorted({i.strike for i in mine})
            assert chain.lot_size == mine[0].lot_size
            for s in chain.strikes:
                assert s.ce.strike == s.pe.strike == s.strike and s.ce.expiry == s.pe.expiry == expiry
                assert (s.ce.instrument_type, s.pe.instrument_type) == ("CE", "PE")
            assert {s.ce.instrument_token for s in chain.strikes} | {s.pe.instrument_token for s in chain.strikes} \
                == {i.instrument_token for i in mine}
    assert build_chains(instruments, "INFOSYS") == {}


def test_nearest_chain_atm_offset_and_lot_size():
    instruments = sim_instruments()
    chain = nearest_chain(instruments, "NIFTY", SIM_DAY)
    expiries = sorted({i.expiry for i in instruments if i.name == "NIFTY" and i.instrument_type == "CE"})
    assert chain.expiry == expiries[0] and chain.lot_size == 65
    assert nearest_chain(instruments, "NIFTY", SIM_DAY, min_days=(expiries[0] - SIM_DAY).days + 1).expiry == expiries[1]
    strikes = np.array([s.strike for s in chain.strikes])
    for spot in (25_512.3, 26_000.0, 26_024.9, 26_026.0, 10_000.0, 99_999.0):
        assert chain.atm(spot).strike == strikes[np.argmin(np.abs(strikes - spot))]
    i = int(np.argmin(np.abs(strikes - 26_010)))
    assert chain.by_offset(26_010, 3).strike == strikes[i + 3]
    assert chain.by_offset(26_010, -3).strike == strikes[i - 3]
    assert chain.by_offset(26_010, 1000).strike == strikes[-1]  # clamped to the chain


def test_by_delta_picks_the_strike_vollib_would():
    instruments = sim_instruments()
    chain = nearest_chain(instruments, "NIFTY", SIM_DAY, min_days=3)
    now = datetime(2026, 11, 24, 11, 0, tzinfo=IST).timestamp()
    t = years_to_expiry(chain.expiry, now)
    fwd, smile = 26_040.0, lambda k: 0.12 + 0.25 * (math.log(k / 26_040.0)) ** 2
    prices = {}
    for s in chain.strikes:
        prices[s.ce.instrument_token] = vl_black("c", fwd, s.strike, t, RATE, smile(s.strike))
        prices[s.pe.instrument_token] = vl_black("p", fwd, s.strike, t, RATE, smile(s.strike))
    for kind, target in (("CE", 0.25), ("CE", 0.1), ("PE", -0.2), ("PE", -0.4)):
        flag = "c" if kind == "CE" else "p"
        deltas = [vl_b76g.delta(flag, fwd, s.strike, t, RATE, smile(s.strike)) for s in chain.strikes]
        expected = chain.strikes[int(np.argmin(np.abs(np.array(deltas) - target)))].strike
        assert chain.by_delta(kind, target, fwd, now, prices).strike == expected
    atm = chain.atm(26_000)
    both = {atm.ce.instrument_token: prices[atm.ce.instrument_token],
            atm.pe.instrument_token: prices[atm.pe.instrument_token]}
    assert chain.implied_future(26_000, both, now) == pytest.approx(fwd, rel=1e-10)
    assert chain.implied_future(26_000, {}, now) == pytest.approx(26_000 * math.exp(RATE * t), rel=1e-12)


def test_chain_from_the_official_instruments_mock(kite_mocks):
    import csv

    path = kite_mocks / "instruments_all.csv"
    rows = [r for r in csv.DictReader(path.open()) if r["segment"] == "NFO-OPT"]
    instruments = [Instrument(instrument_token=int(r["instrument_token"]), exchange_token=int(r["exchange_token"]),
                              tradingsymbol=r["tradingsymbol"], name=r["name"], last_price=0.0,
                              expiry=date.fromisoformat(r["expiry"]), strike=float(r["strike"]),
                              tick_size=float(r["tick_size"]), lot_size=int(r["lot_size"]),
                              instrument_type=r["instrument_type"], segment=r["segment"], exchange=r["exchange"])
                   for r in rows]
    for name in {i.name for i in instruments}:
        chains = build_chains(instruments, name)
        n_legs = sum((s.ce is not None) + (s.pe is not None) for c in chains.values() for s in c.strikes)
        assert n_legs == sum(1 for i in instruments if i.name == name)
        for c in chains.values():
            assert [s.strike for s in c.strikes] == sorted(s.strike for s in c.strikes)


# ---- OI tracker -------------------------------------------------------------------------------

def test_oi_tracker_against_a_recomputation():
    rng = np.random.default_rng(9)
    strikes = [25_500.0 + 50 * i for i in range(21)]
    strike_of, token = {}, 1000
    for k in strikes:
        for kind in ("CE", "PE"):
            strike_of[token] = (k, kind)
            token += 1
    tracker = OITracker(strike_of)
    assert tracker.pcr is None and tracker.max_pain() is None
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for _ in range(3000):
        tok = int(rng.choice(list(strike_of)))
        oi = int(rng.integers(0, 5_000_000))
        tracker.update(tok, oi)
        first.setdefault(tok, oi)
        last[tok] = oi
        tracker.update(999_999, 7)  # not an option of this chain: ignored
    ce = {strike_of[t][0]: v for t, v in last.items() if strike_of[t][1] == "CE"}
    pe = {strike_of[t][0]: v for t, v in last.items() if strike_of[t][1] == "PE"}
    assert tracker.pcr == pytest.approx(sum(pe.values()) / sum(ce.values()), rel=1e-15)
    for t, (k, kind) in strike_of.items():
        change = tracker.change(k)
        assert change[0 if kind == "CE" else 1] == last.get(t, 0) - first.get(t, 0)
    ks = np.array(sorted(set(ce) | set(pe)))
    ce_v = np.array([ce.get(k, 0) for k in ks], dtype=float)
    pe_v = np.array([pe.get(k, 0) for k in ks], dtype=float)
    payout = [np.sum(np.maximum(0, x - ks) * ce_v + np.maximum(0, ks - x) * pe_v) for x in ks]
    assert tracker.max_pain() == ks[int(np.argmin(payout))]


def test_max_pain_on_a_hand_built_chain():
    # heavy call writing at 26100, heavy put writing at 25900: writers pay least in between
    tracker = OITracker({1: (25_900.0, "CE"), 2: (25_900.0, "PE"), 3: (26_000.0, "CE"), 4: (26_000.0, "PE"),
                         5: (26_100.0, "CE"), 6: (26_100.0, "PE")})
    for tok, oi in ((1, 100), (2, 9000), (3, 3000), (4, 3000), (5, 9000), (6, 100)):
        tracker.update(tok, oi)
    assert tracker.max_pain() == 26_000.0
    assert tracker.pcr == pytest.approx((9000 + 3000 + 100) / (100 + 3000 + 9000))
    tracker.update(4, 5000)
    assert tracker.change(26_000.0) == (0, 2000)
