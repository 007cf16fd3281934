"""The fill model: the broker's rules as pure functions, and fills of orders resting through a bar."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shared.fills import (BarFills, bar_path, circuit_band, protection_price, quantity_error, trigger_hit,
                          walk_depth)

T = 5  # a ₹0.05 tick, in paise
F = BarFills(slippage_ticks=1)


def test_broker_rules():
    assert protection_price("BUY", 100_00, -1, T) == 102_00  # automatic protection: 2 %
    assert protection_price("SELL", 100_00, 0.5, T) == 99_50
    assert protection_price("BUY", 60, -1, T) == 65 and protection_price("SELL", 60, -1, T) == 55  # ₹0.60: a tick
    assert protection_price("BUY", 12_40, -1, T) == 12_65 and protection_price("SELL", 12_40, -1, T) == 12_15
    assert protection_price("SELL", 5, -1, T) == 5  # never below one tick
    assert trigger_hit("BUY", 100_00, 100_00) and not trigger_hit("BUY", 100_00, 99_95)
    assert trigger_hit("SELL", 100_00, 99_95) and not trigger_hit("SELL", 100_00, 100_05)
    book = [(100_05, 30), (100_10, 50), (100_20, 100)]
    assert walk_depth("BUY", 100_10, 60, book) == [(30, 100_05), (30, 100_10)]
    assert walk_depth("BUY", 100_10, 200, book) == [(30, 100_05), (50, 100_10)]  # the rest stays open
    assert walk_depth("BUY", 100_20, 100, [(100_05, 70), (100_10, 100)], lot_size=65) == [(65, 100_05)]
    assert circuit_band(100_00, 20, T) == (80_00, 120_00)
    assert quantity_error(100, 65, 1800) == "Quantity should be a multiple of lot size (65)."
    assert quantity_error(1950, 65, 1800).startswith("Quantity exceeds the freeze limit of 1800")
    assert quantity_error(130, 65, 1800) is None


def test_path_rule():
    assert bar_path(100, 110, 90, 105) == (100, 90, 110, 105)  # rising: low first
    assert bar_path(100, 110, 90, 95) == (100, 110, 90, 95)


def test_market_crosses_the_spread_within_protection_and_band():
    assert F.market("BUY", 100_00, T) == 100_05 and F.market("SELL", 100_00, T) == 99_95
    assert BarFills(slippage_ticks=100).market("BUY", 100_00, T, protection_pct=0.1) == 100_10
    assert F.market("BUY", 120_00, T, band=(80_00, 120_00)) == 120_00


def test_limit_and_gaps():
    rising = bar_path(100_00, 101_00, 99_00, 100_50)  # 100 → 99 → 101 → 100.5
    assert F.limit("BUY", 99_50, rising, T) == (1, 99_50)
    assert F.limit("BUY", 99_00, rising, T) is None  # touched, never traded through by the spread
    assert F.limit("SELL", 100_80, rising, T) == (2, 100_80)
    assert F.limit("BUY", 101_00, rising, T) == (0, 100_05)  # already through at the open: the open's offer


def test_stops_and_gaps():
    falling = bar_path(100_00, 100_50, 97_00, 97_50)  # 100 → 100.5 → 97 → 97.5
    assert F.stop("SELL", 99_00, None, falling, T) == (2, 98_95)  # SL-M: trigger, then the spread
    assert F.stop("SELL", 99_00, 98_90, falling, T) == (2, 98_95)  # SL within its limit
    gap = bar_path(96_00, 96_50, 95_00, 95_50)  # opens below the 99 trigger
    assert F.stop("SELL", 99_00, None, gap, T) == (0, 95_95)  # at the open, never at the skipped trigger
    assert F.stop("SELL", 99_00, 98_00, gap, T) is None  # the SL's limit is never reached again
    assert F.stop("BUY", 101_00, None, falling, T) is None


def test_stop_loss_before_target_when_the_path_says_so():
    falling = bar_path(100_00, 102_00, 97_00, 98_00)  # up to 102 first, then down to 97
    target = F.limit("SELL", 101_50, falling, T)  # a long's target
    stop = F.stop("SELL", 98_00, None, falling, T)  # and its stop-loss
    assert target[0] < stop[0]  # the target is reached first: it fills, the stop is cancelled (OCO)


@given(o=st.integers(1000, 100000), moves=st.lists(st.integers(-500, 500), min_size=3, max_size=3),
       limit_off=st.integers(-1000, 1000), side=st.sampled_from(["BUY", "SELL"]))
def test_fills_are_never_better_than_the_limit_nor_outside_the_bar(o, moves, limit_off, side):
    c = o + moves[0]
    h, lo = max(o, c) + abs(moves[1]), min(o, c) - abs(moves[2])
    path = bar_path(o * T, h * T, lo * T, c * T)
    limit = (o + limit_off) * T
    got = F.limit(side, limit, path, T)
    if got is not None:
        _, price = got
        assert (price <= limit) if side == "BUY" else (price >= limit)
        assert lo * T - T <= price <= h * T + T
