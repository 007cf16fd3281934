"""The vertical spreads on the option market of option_market.py: a bull call spread on an uptrend (and not
when volatility is rich), a bear put spread on a downtrend and its exit."""


import numpy as np
import pytest

from shared.messages import SignalGroup
from tests.strategy_worker.kit import Desk
from tests.strategy_worker.option_market import (
    BUY,
    FWD,
    SELL,
    STRIKES,
    Market,
    expected_stop_target,
    leg,
    reversed_legs,
    shape,
    smile,
)

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
