"""External changes at the broker: what differs, and whose position each part closes."""

from shared.messages import Position
from shared.trading.external import allocate, differences


def pos(symbol, qty, product="MIS", strategy_id=""):
    return Position(tradingsymbol=symbol, exchange="NSE", quantity=qty, product=product, strategy_id=strategy_id)


def test_differences_by_instrument_and_product_and_delivered_cnc_is_not_one():
    kta = [pos("INFY", 10, strategy_id="a"), pos("INFY", 5, strategy_id="b"), pos("TCS", 3, "CNC", "a"),
           pos("ITC", 7, "CNC", "a")]
    broker = [pos("INFY", 0), pos("ITC", 4, "CNC"), pos("WIPRO", -2)]  # MIS squared off; TCS delivered
    diffs = {(d.tradingsymbol, d.product): d.delta for d in differences(kta, broker)}
    assert diffs == {("INFY", "MIS"): -15, ("ITC", "CNC"): -3, ("WIPRO", "MIS"): -2}


def test_a_close_goes_to_the_holders_largest_first_and_an_opening_to_nobody():
    assert allocate(-15, {"a": 10, "b": 5}) == [("a", -10), ("b", -5)]
    assert allocate(-12, {"a": 10, "b": 5}) == [("a", -10), ("b", -2)]
    assert allocate(-20, {"a": 10, "b": 5}) == [("a", -10), ("b", -5), ("", -5)]  # beyond: the account's own
    assert allocate(4, {"a": 10, "c": -3}) == [("c", 3), ("", 1)]  # closes the short, the rest opens
    assert allocate(5, {}) == [("", 5)]
    assert allocate(-4, {"": 10, "a": 4}) == [("a", -4)]  # a strategy learns first that its position is gone


def test_cnc_against_the_day_position_plus_holdings_and_only_a_shortfall_counts():
    holdings = {("NSE", "TCS"): 3, ("NSE", "ITC"): 5, ("NSE", "HDFCBANK"): 40}
    kta = [pos("TCS", 0, "CNC", "a"), pos("ITC", 5, "CNC", "a"), pos("SBIN", 2, "CNC", "a")]
    # TCS: carried 3 sold today by its GTT (day position -3 against the T1 holding): flat, as kta says;
    # ITC: carried, untouched; HDFCBANK: the trader's own shares; SBIN: bought today, sold in Kite (-2 today)
    broker = [pos("TCS", -3, "CNC"), pos("SBIN", 0, "CNC")]
    diffs = {(d.tradingsymbol, d.product): d.delta for d in differences(kta, broker, holdings)}
    assert diffs == {("SBIN", "CNC"): -2}
    # without the holdings, TCS's sale would read as an external sale opening a short
    assert ("TCS", "CNC") in {(d.tradingsymbol, d.product) for d in differences(kta, broker)}
    # a carried position the trader sold in Kite: the holding remains, today's -5 leaves 0 of kta's 5
    assert [d.delta for d in differences([pos("ITC", 5, "CNC", "a")], [pos("ITC", -5, "CNC")], holdings)] == [-5]


def test_more_cnc_shares_count_only_up_to_what_kta_orders_may_have_filled_unheard():
    """An order of kta's that filled while kta was not listening (the worker down over the close) shows as more
    shares in the holdings than kta has: that much, and no more, is a difference (the rest is the trader's own)."""
    holdings = {("NSE", "INFY"): 20_010}  # 10 of the trader's own, 20,000 bought by kta's order
    kta = [pos("INFY", 450, "CNC", "a")]  # kta heard 450 of the 20,000 fill
    assert differences(kta, [], holdings) == []  # nothing unheard: the surplus is the trader's
    (d,) = differences(kta, [], holdings, {("NSE", "INFY", "CNC"): 19_550})
    assert d.delta == 19_550
    (d,) = differences(kta, [], holdings, {("NSE", "INFY", "CNC"): 30_000})  # what may have filled, at most
    assert d.delta == 19_560
    assert differences(kta, [], holdings, {("NSE", "INFY", "CNC"): -100}) == []  # an unheard sale adds no shares
