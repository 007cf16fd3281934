"""The option structures on kite_sim's real NIFTY chain with prices from py_vollib's Black-76 on a known
smile (tests/strategy_worker/option_market.py): the exact SignalGroup an iron condor, a straddle and a strangle
must emit (legs, strikes by delta / distance, hedges, lots, stop and target on the net premium), their exits, the
restart, and when each must stay silent. Vertical spreads: test_option_spreads.py; what every structure does
through warm-up, rollback, fills and expiry day: test_option_lifecycle.py."""


import pytest

from shared.messages import Bar, SignalGroup, Tick
from strategy_worker.strategies import registry
from strategy_worker.strategies.context import StrategyContext
from tests.strategy_worker.kit import Desk
from tests.strategy_worker.option_market import (
    BUY,
    EXPIRY,
    FWD,
    INSTRUMENTS,
    NIFTY,
    OPT,
    SELL,
    STRIKES,
    Market,
    at,
    expected_stop_target,
    leg,
    reversed_legs,
    shape,
)

# ---- iron condor ------------------------------------------------------------------------------

def test_iron_condor_sells_by_delta_buys_wings_as_one_group():
    mkt = Market()
    s = mkt.strategy("iron_condor", {"short_delta": 0.2, "wing_steps": 3, "lots": 2})
    assert mkt.bar(s, 26_000.0, 9, 20) == []  # before the entry window (09:30)
    out = mkt.bar(s, 26_010.0, 9, 30)
    assert len(out) == 1 and isinstance(out[0], SignalGroup)
    g = out[0]
    sc, sp = mkt.by_delta("CE", 0.2), mkt.by_delta("PE", -0.2)
    lc, lp = STRIKES[STRIKES.index(sc) + 3], STRIKES[STRIKES.index(sp) - 3]
    assert sp < 26_010 < sc
    assert shape(g) == [leg(lc, "CE", BUY, 2, True), leg(lp, "PE", BUY, 2, True),
                        leg(sc, "CE", SELL, 2), leg(sp, "PE", SELL, 2)]
    assert (g.structure, g.underlying, g.intent, g.strategy) == ("iron_condor", "NIFTY", "entry", "iron_condor")
    stop, target = expected_stop_target(mkt, [(lc, "CE", BUY, 130), (lp, "PE", BUY, 130), (sc, "CE", SELL, 130),
                                              (sp, "PE", SELL, 130)], 1.0, 0.5)
    assert (g.stop_loss, g.target) == (stop, target) and stop > target > 0  # a credit: stop above, target below
    assert g.metadata["expiry"] == EXPIRY.isoformat() and g.metadata["forward"] == pytest.approx(FWD, abs=0.01)
    assert 0.5 <= g.confidence <= 1 and g.tick_ts == mkt.now
    assert s.positions() == {}  # sent, not filled: nothing is held yet
    assert mkt.bar(s, 26_015.0, 9, 35) == []  # in flight: no second entry
    Desk().fill(s, g)
    assert s.positions() == {OPT[(lc, "CE")].instrument_token: 130, OPT[(lp, "PE")].instrument_token: 130,
                          OPT[(sc, "CE")].instrument_token: -130, OPT[(sp, "PE")].instrument_token: -130}
    assert mkt.bar(s, 26_015.0, 9, 40) == []  # open: no second entry, no exit yet


def test_iron_condor_exits_all_legs_at_the_target_and_survives_a_restart():
    mkt = Market()
    s, desk = mkt.strategy("iron_condor", {"target_pct": 0.5}), Desk()
    entry = mkt.bar(s, 26_010.0, 9, 30)[0]
    desk.fill(s, entry)
    restarted = mkt.strategy("iron_condor", {"target_pct": 0.5})
    restarted.restore(s.snapshot())
    assert restarted.positions() == s.positions() and len(s.positions()) == 4
    assert mkt.bar(restarted, 26_020.0, 9, 35) == []  # resumed holding the structure: no re-entry
    mkt.reprice(base_vol=0.04)  # premium collapses: the credit is captured
    out = mkt.bar(restarted, 26_020.0, 9, 40)
    assert len(out) == 1 and out[0].intent == "exit" and out[0].structure == "iron_condor"
    assert "target" in out[0].reason
    assert sorted(shape(out[0])) == sorted(reversed_legs(entry))
    assert [leg.transaction_type for leg in out[0].legs] == [BUY, BUY, SELL, SELL]  # shorts bought back first
    assert len(restarted.positions()) == 4  # until the exit fills
    desk.fill(restarted, out[0])
    assert restarted.positions() == {} and "legs" not in restarted.instances[NIFTY].state


def test_iron_condor_stop_on_a_premium_blowout():
    mkt = Market()
    s = mkt.strategy("iron_condor", {"stop_pct": 0.5})
    Desk().fill(s, mkt.bar(s, 26_010.0, 9, 30)[0])
    mkt.reprice(base_vol=0.30)
    out = mkt.bar(s, 26_010.0, 9, 35)
    assert [g.intent for g in out] == ["exit"] and "stop" in out[0].reason


def test_iron_condor_silent_when_spot_is_outside_the_shorts_or_no_chain():
    mkt = Market()
    s = mkt.strategy("iron_condor")
    assert mkt.bar(s, 27_500.0, 10, 0) == []  # spot far above the parity forward's short call
    assert s.instances[NIFTY].state == {} and s.positions() == {}
    bare = StrategyContext([i for i in INSTRUMENTS if i.instrument_type not in ("CE", "PE")], {},
                           clock=lambda: at(10, 0))
    s2 = registry.get("iron_condor")("x", "DEMO01", registry.validate_params("iron_condor", {}), NIFTY, bare)
    bare.last_ticks[NIFTY] = Tick(NIFTY, "full", True, 26_000.0)
    assert s2.on_bar(Bar(NIFTY, "5minute", at(10, 0), 26_000, 26_000, 26_000, 26_000, 0)) == []
    # a bar of another token never opens a structure
    assert mkt.bar(s, 26_010.0, 10, 0, token=OPT[(STRIKES[0], "CE")].instrument_token) == []


def test_time_exit_before_the_close():
    mkt = Market()
    s = mkt.strategy("iron_condor", {"exit_minute": 900})
    entry = mkt.bar(s, 26_010.0, 14, 0)[0]
    Desk().fill(s, entry)
    assert mkt.bar(s, 26_010.0, 14, 55) == []
    out = mkt.bar(s, 26_010.0, 15, 0)
    assert out[0].intent == "exit" and "time exit" in out[0].reason
    assert sorted(shape(out[0])) == sorted(reversed_legs(entry))


# ---- straddle / strangle ----------------------------------------------------------------------

def test_short_straddle_is_hedged_with_wings_by_default():
    mkt = Market()
    s = mkt.strategy("straddle", {"wing_steps": 6, "lots": 1})
    g = mkt.bar(s, 25_990.0, 9, 45)[0]
    Desk().fill(s, g)
    atm = min(STRIKES, key=lambda k: abs(k - FWD))  # ATM of the forward, not of the spot
    wc, wp = STRIKES[STRIKES.index(atm) + 6], STRIKES[STRIKES.index(atm) - 6]
    assert g.structure == "hedged_straddle"
    assert shape(g) == [leg(wc, "CE", BUY, 1, True), leg(wp, "PE", BUY, 1, True),
                        leg(atm, "CE", SELL, 1), leg(atm, "PE", SELL, 1)]
    assert (g.stop_loss, g.target) == expected_stop_target(
        mkt, [(wc, "CE", BUY, 65), (wp, "PE", BUY, 65), (atm, "CE", SELL, 65), (atm, "PE", SELL, 65)], 1.0, 0.5)
    mkt.reprice(base_vol=0.03)
    out = mkt.bar(s, 25_990.0, 9, 50)
    assert out[0].structure == "hedged_straddle" and sorted(shape(out[0])) == sorted(reversed_legs(g))


def test_long_straddle_buys_both_with_a_debit_stop_and_target():
    mkt = Market()
    s = mkt.strategy("straddle", {"side": "long", "lots": 3, "stop_pct": 0.4, "target_pct": 0.8})
    g = mkt.bar(s, 26_040.0, 10, 0)[0]
    atm = min(STRIKES, key=lambda k: abs(k - FWD))
    assert g.structure == "straddle"
    assert shape(g) == [leg(atm, "CE", BUY, 3), leg(atm, "PE", BUY, 3)]
    stop, target = expected_stop_target(mkt, [(atm, "CE", BUY, 195), (atm, "PE", BUY, 195)], 0.4, 0.8)
    assert (g.stop_loss, g.target) == (stop, target) and target < stop < 0  # a debit: negative premium


def test_unhedged_short_straddle_only_when_asked():
    mkt = Market()
    g = mkt.bar(mkt.strategy("straddle", {"hedged": False}), 26_040.0, 10, 0)[0]
    assert g.structure == "straddle" and [leg[1] for leg in shape(g)] == [SELL, SELL]
    assert not any(leg.is_hedge for leg in g.legs)


def test_strangle_picks_strikes_by_delta():
    mkt = Market()
    g = mkt.bar(mkt.strategy("strangle", {"strangle_delta": 0.3, "wing_steps": 2, "lots": 2}), 26_040.0, 10, 0)[0]
    c, p = mkt.by_delta("CE", 0.3), mkt.by_delta("PE", -0.3)
    assert c > FWD > p
    assert g.structure == "hedged_strangle"
    assert shape(g) == [leg(STRIKES[STRIKES.index(c) + 2], "CE", BUY, 2, True),
                        leg(STRIKES[STRIKES.index(p) - 2], "PE", BUY, 2, True),
                        leg(c, "CE", SELL, 2), leg(p, "PE", SELL, 2)]


def test_volatility_structures_wait_for_the_entry_window():
    mkt = Market()
    for name in ("straddle", "strangle"):
        s = mkt.strategy(name, {"entry_after_minute": 600})
        assert mkt.bar(s, 26_040.0, 9, 55) == []
        assert len(mkt.bar(s, 26_040.0, 10, 0)) == 1
