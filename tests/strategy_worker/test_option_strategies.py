"""The five option structures on kite_sim's real NIFTY chain with prices from py_vollib's Black-76 on
a known smile: the exact SignalGroup each must emit (legs, strikes by delta / distance, hedges,
lots, stop and target on the net premium), the exits, the restart, and when each must stay silent.
Expected strikes are found from py_vollib deltas, not from our chain code."""

import math
from datetime import date, datetime

import numpy as np
import pytest

from shared.ist import IST
from shared.messages import Bar, SignalGroup, Tick, TransactionType, to_paise
from shared.options.chain import RATE, years_to_expiry
from strategy_worker.runner import StrategyRunner
from strategy_worker.strategies import registry
from strategy_worker.strategies.context import StrategyContext
from tests.shared.test_options import sim_instruments
from tests.strategy_worker.kit import Desk
from tests.vollib import black as vl_black
from tests.vollib import black_delta as vl_delta

BUY, SELL = TransactionType.BUY, TransactionType.SELL
DAY = date(2026, 11, 25)  # a Wednesday: the nearest NIFTY weekly expires next Tuesday
NIFTY, LOT, FWD = 256265, 65, 26_040.0
INSTRUMENTS = sim_instruments(DAY)
EXPIRY = min(i.expiry for i in INSTRUMENTS if i.name == "NIFTY" and i.instrument_type == "CE")
CHAIN = sorted((i for i in INSTRUMENTS if i.name == "NIFTY" and i.expiry == EXPIRY), key=lambda i: i.strike)
STRIKES = sorted({i.strike for i in CHAIN})
OPT = {(i.strike, i.instrument_type): i for i in CHAIN}


def at(hour: int, minute: int) -> int:
    return int(datetime(DAY.year, DAY.month, DAY.day, hour, minute, tzinfo=IST).timestamp())


def smile(k: float, base: float = 0.12) -> float:
    return base + 0.25 * math.log(k / FWD) ** 2


class Market:
    """A context whose last ticks are the chain priced at FWD on the smile, and a settable clock."""

    def __init__(self, base_vol: float = 0.12) -> None:
        self.now = at(10, 0)
        self.live = False  # reprice the chain at every bar's time
        self.ctx = StrategyContext(INSTRUMENTS, {}, clock=lambda: self.now)
        self.reprice(base_vol)

    def t(self) -> float:
        return years_to_expiry(EXPIRY, self.now)

    def reprice(self, base_vol: float = 0.12, fwd: float = FWD) -> None:
        self.vol = base_vol
        for (k, kind), inst in OPT.items():
            self.set(inst.instrument_token, vl_black(kind[0].lower(), fwd, k, self.t(), RATE, smile(k, base_vol)))

    def set(self, token: int, price: float) -> None:
        self.ctx.last_ticks[token] = Tick(token, "full", True, price, exchange_timestamp=self.now)

    def price(self, strike: float, kind: str) -> float:
        return self.ctx.last_ticks[OPT[(strike, kind)].instrument_token].last_price

    def by_delta(self, kind: str, target: float) -> float:
        flag = "c" if kind == "CE" else "p"
        d = [vl_delta(flag, FWD, k, self.t(), RATE, smile(k, self.vol)) for k in STRIKES]
        return STRIKES[int(np.argmin(np.abs(np.array(d) - target)))]

    def strategy(self, name: str, params: dict | None = None, sid: str = "opt1") -> StrategyRunner:
        return StrategyRunner(registry.get(name), sid, "DEMO01", registry.validate_params(name, params or {}),
                              [NIFTY], self.ctx)

    def bar(self, strategy, close: float, hour: int, minute: int, token: int = NIFTY) -> list:
        """One completed 5-minute bar of ``token`` at hh:mm, its close the spot's last tick."""
        self.now = at(hour, minute) + 299
        if self.live:
            self.reprice(self.vol)
        tick = Tick(token, "full", True, close, exchange_timestamp=self.now, received_at=self.now * 10**9)
        self.ctx.last_ticks[token] = tick
        return strategy.on_bar(Bar(token, "5minute", at(hour, minute), close, close + 2, close - 2, close, 0))


def shape(group: SignalGroup) -> list[tuple]:
    return [(leg.tradingsymbol, leg.transaction_type, leg.quantity, leg.is_hedge, leg.strike, leg.option_type)
            for leg in group.legs]


def leg(strike: float, kind: str, side, lots: int, hedge: bool = False) -> tuple:
    inst = OPT[(strike, kind)]
    return (inst.tradingsymbol, side, lots * LOT, hedge, to_paise(strike), kind)


def expected_stop_target(mkt: Market, legs: list[tuple], stop_pct: float, target_pct: float) -> tuple[int, int]:
    premium = sum(mkt.price(s, k) * q * (1 if side is SELL else -1) for (s, k, side, q) in legs)
    return to_paise(round(premium + stop_pct * abs(premium), 2)), to_paise(round(premium - target_pct * abs(premium), 2))


def reversed_legs(group: SignalGroup) -> list[tuple]:
    flip = {BUY: SELL, SELL: BUY}
    return [(s, flip[side], q, h, k, o) for (s, side, q, h, k, o) in shape(group)]


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


# ---- vertical spreads -------------------------------------------------------------------------

def trend(start: float, step: float, n: int) -> list[float]:
    return [start + step * i for i in range(n)]


def feed_series(mkt: Market, s, closes: list[float], desk: Desk | None = None) -> list[tuple[int, SignalGroup]]:
    out, mkt.live = [], True
    for i, c in enumerate(closes):
        minutes = 9 * 60 + 15 + 5 * i
        for g in mkt.bar(s, c, minutes // 60, minutes % 60):
            out.append((i, g))
            if desk is not None:
                desk.fill(s, g)
    return out


def first_ready_uptrend_bar(closes, fast, slow, sign, window_start: int = 3) -> int:
    import talib

    c = np.array(closes)
    diff = sign * (talib.EMA(c, fast) - talib.EMA(c, slow))
    return int(next(i for i in range(len(c)) if i >= window_start and not np.isnan(diff[i]) and diff[i] > 0))


def test_bull_call_spread_on_an_uptrend():
    mkt = Market()
    closes = trend(25_900.0, 8.0, 30)
    s = mkt.strategy("bull_call_spread", {"fast": 3, "slow": 8, "width_steps": 4, "lots": 2})
    i = first_ready_uptrend_bar(closes, 3, 8, +1)
    out = feed_series(mkt, s, closes[:i + 1])
    assert [k for k, _ in out] == [i]
    g = out[0][1]
    atm = min(STRIKES, key=lambda k: abs(k - FWD))
    far = STRIKES[STRIKES.index(atm) + 4]
    assert g.structure == "bull_call_spread"
    assert shape(g) == [leg(atm, "CE", BUY, 2, True), leg(far, "CE", SELL, 2)]
    assert g.metadata["iv"] == pytest.approx(smile(atm), rel=1e-6)
    assert (g.stop_loss, g.target) == expected_stop_target(mkt, [(atm, "CE", BUY, 130), (far, "CE", SELL, 130)],
                                                           1.0, 0.5)
    assert feed_series(mkt, mkt.strategy("bull_call_spread", {"fast": 3, "slow": 8}), trend(26_100.0, -8.0, 30)) == []


def test_bull_call_spread_skips_rich_volatility():
    mkt = Market(base_vol=0.7)
    s = mkt.strategy("bull_call_spread", {"fast": 3, "slow": 8, "max_iv": 0.5})
    assert feed_series(mkt, s, trend(25_900.0, 8.0, 30)) == []


def test_bear_put_spread_on_a_downtrend_and_its_exit():
    mkt = Market()
    closes = trend(26_200.0, -8.0, 30)
    s = mkt.strategy("bear_put_spread", {"fast": 3, "slow": 8, "width_steps": 3, "lots": 1, "target_pct": 0.3})
    out = feed_series(mkt, s, closes, Desk())
    i = first_ready_uptrend_bar(closes, 3, 8, -1)
    assert [k for k, _ in out] == [i]
    g = out[0][1]
    atm = min(STRIKES, key=lambda k: abs(k - FWD))
    far = STRIKES[STRIKES.index(atm) - 3]
    assert shape(g) == [leg(atm, "PE", BUY, 1, True), leg(far, "PE", SELL, 1)]
    assert feed_series(mkt, mkt.strategy("bear_put_spread", {"fast": 3, "slow": 8}), trend(25_900.0, 8.0, 30)) == []
    # the market falls through the bought put: the spread widens to its target
    mkt.live = False
    mkt.reprice(fwd=FWD - 250)
    exit_ = mkt.bar(s, FWD - 250, 12, 0)
    assert [x.intent for x in exit_] == ["exit"] and "target" in exit_[0].reason
    assert sorted(shape(exit_[0])) == sorted(reversed_legs(g))


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
