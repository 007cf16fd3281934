"""What every option structure does, on the option market of option_market.py: it signals only whole groups,
stays silent while warming up on history, leaves nothing behind a rolled-back entry, exits exactly what is held,
takes its entry premium from the fills, records the chain's OI positioning, and enters no structure on expiry
day once the expiry-day exit is near."""

from datetime import datetime

import numpy as np
import pytest

from shared.ist import IST
from shared.messages import Bar, SignalGroup, Tick
from tests.strategy_worker.kit import Desk
from tests.strategy_worker.option_market import EXPIRY, FWD, NIFTY, OPT, STRIKES, Market, at, reversed_legs, shape


def test_every_option_signal_is_a_group_never_a_loose_leg():
    mkt = Market()
    for name, params in (("iron_condor", {}), ("straddle", {}), ("strangle", {}), ("straddle", {"side": "long"})):
        out = mkt.bar(mkt.strategy(name, params), 26_030.0, 10, 0)
        assert len(out) == 1 and isinstance(out[0], SignalGroup) and len(out[0].legs) >= 2
        assert out[0].stop_loss is not None and out[0].target is not None


def test_warm_up_on_history_neither_opens_nor_closes_a_structure():
    mkt, desk = Market(), Desk()
    s = mkt.strategy("iron_condor")
    mkt.now = at(10, 0) + 299
    history = Bar(NIFTY, "5minute", at(10, 0), 26_010.0, 26_012.0, 26_008.0, 26_010.0, 0)
    s.warm_up(history)  # a bar in the entry window: live it would enter
    assert s.instances[NIFTY].state == {} and s.positions() == {} and s.in_flight() == []
    entry = mkt.bar(s, 26_010.0, 10, 5)[0]
    desk.fill(s, entry)
    restarted = mkt.strategy("iron_condor")
    restarted.restore(s.snapshot())
    mkt.reprice(base_vol=0.03)  # live, this would hit the target and close
    restarted.warm_up(Bar(NIFTY, "5minute", at(10, 5), 26_010.0, 26_012.0, 26_008.0, 26_010.0, 0))
    assert restarted.positions() == s.positions() and restarted.in_flight() == []
    assert sorted(shape(mkt.bar(restarted, 26_010.0, 10, 10)[0])) == sorted(reversed_legs(entry))


def test_a_rolled_back_entry_leaves_the_structure_flat_and_sends_no_exit():
    mkt, desk = Market(), Desk()
    s = mkt.strategy("iron_condor", {"exit_minute": 900})
    entry = mkt.bar(s, 26_010.0, 14, 0)[0]
    desk.roll_back(s, entry, filled_legs=2)  # the wings filled, a short leg was rejected: wings sold back
    assert s.positions() == {} and s.in_flight() == []
    # the time exit comes: nothing is held, so nothing is sent (the bug: a "naked short put")
    assert mkt.bar(s, 26_010.0, 15, 0) == []
    assert "legs" not in s.instances[NIFTY].state


def test_a_refused_entry_is_tried_again_after_a_pause_not_on_every_bar():
    """A trader session: a bull call spread refused for margin was sent again on every bar (12 refusals in
    three minutes); a rolled-back entry would buy and sell its wings back a bar at a time."""
    mkt, desk = Market(), Desk()
    s = mkt.strategy("iron_condor", {"exit_minute": 900})
    entry = mkt.bar(s, 26_010.0, 10, 0)[0]
    desk.refuse(s, entry, "INSUFFICIENT_MARGIN", "needs ₹80,000 of margin, ₹50,000 available")
    assert s.positions() == {} and s.in_flight() == []
    assert mkt.bar(s, 26_010.0, 10, 5) == [] and mkt.bar(s, 26_010.0, 10, 10) == []
    again = mkt.bar(s, 26_010.0, 10, 15)  # the pause (15 minutes of the exchange's clock) is over
    assert len(again) == 1 and isinstance(again[0], SignalGroup)
    desk.roll_back(s, again[0], filled_legs=2)
    assert s.positions() == {} and mkt.bar(s, 26_010.0, 10, 20) == []
    assert len(mkt.bar(s, 26_010.0, 10, 30)) == 1


def test_the_exit_closes_exactly_what_is_held():
    mkt, desk = Market(), Desk()
    s = mkt.strategy("iron_condor", {"exit_minute": 900})
    entry = mkt.bar(s, 26_010.0, 14, 0)[0]
    desk.fill(s, entry)
    short_put = entry.legs[3]
    desk.external(s, short_put.instrument_token, 0, "manual trade in Kite")  # the trader bought it back
    out = mkt.bar(s, 26_010.0, 15, 0)
    assert len(out) == 1 and short_put.tradingsymbol not in [leg.tradingsymbol for leg in out[0].legs]
    assert sorted(shape(out[0])) == sorted(x for x in reversed_legs(entry) if x[0] != short_put.tradingsymbol)


def test_the_entry_premium_is_what_the_fills_paid():
    mkt, desk = Market(), Desk()
    s = mkt.strategy("straddle", {"side": "long"})
    g = mkt.bar(s, 26_040.0, 10, 0)[0]
    mkt.reprice(base_vol=0.2)  # prices move between the signal and the fills
    desk.fill(s, g)
    paid = -sum(mkt.price(leg.strike / 100, leg.option_type) * leg.quantity for leg in g.legs)
    assert s.instances[NIFTY].state["entry_premium"] == pytest.approx(paid, abs=0.02 * len(g.legs) * 65)


def test_entry_records_the_chains_oi_positioning():
    mkt = Market()
    rng = np.random.default_rng(3)
    ois = {}
    for (k, kind), inst in OPT.items():
        ois[(k, kind)] = int(rng.integers(10_000, 1_000_000))
        mkt.ctx.track_oi(Tick(inst.instrument_token, "full", True, mkt.price(k, kind), oi=ois[(k, kind)]))
    g = mkt.bar(mkt.strategy("iron_condor"), 26_010.0, 10, 0)[0]
    ce = np.array([ois[(k, "CE")] for k in STRIKES], dtype=float)
    pe = np.array([ois[(k, "PE")] for k in STRIKES], dtype=float)
    ks = np.array(STRIKES)
    pain = [np.sum(np.maximum(0, x - ks) * ce + np.maximum(0, ks - x) * pe) for x in ks]
    assert g.metadata["pcr"] == pytest.approx(pe.sum() / ce.sum(), abs=1e-4)
    assert g.metadata["max_pain"] == ks[int(np.argmin(pain))]
    assert "pcr" not in mkt.bar(Market().strategy("iron_condor"), 26_010.0, 10, 0)[0].metadata  # no OI seen


def test_no_entry_on_expiry_day_once_the_expiry_day_exit_is_near():
    """An entry after 13:30 on the expiry day would be closed by the expiry-day exit a bar later,
    then entered again: the churn seen in a live session. The window closes instead."""
    def on_expiry(hour: int, minute: int) -> int:
        return int(datetime(EXPIRY.year, EXPIRY.month, EXPIRY.day, hour, minute, tzinfo=IST).timestamp())

    mkt = Market()

    def bar(s, hour: int, minute: int) -> list:
        mkt.now = on_expiry(hour, minute) + 299
        mkt.reprice()
        mkt.ctx.last_ticks[NIFTY] = Tick(NIFTY, "full", True, FWD, exchange_timestamp=mkt.now)
        return s.on_bar(Bar(NIFTY, "5minute", on_expiry(hour, minute), FWD, FWD + 2, FWD - 2, FWD, 0))

    late = mkt.strategy("iron_condor")
    assert bar(late, 13, 35) == [] and bar(late, 14, 5) == []
    early = mkt.strategy("iron_condor", sid="early")
    entry = bar(early, 11, 0)
    assert len(entry) == 1 and entry[0].intent == "entry"
    Desk().fill(early, entry[0])
    out = bar(early, 14, 0)
    assert [g.intent for g in out] == ["exit"] and "expiry-day" in out[0].reason
