"""The price of an order's fills kta never heard (its broker day gone: crosscheck's unheard fills). Its last
report kta heard counted some filled that the journal never got (the worker went down between the update and
reading its trades): those are worth what the report's average leaves after the journaled fills — exact — and
only the part never reported goes at the average. (Before: all of it at the average, so an order that walked the
book was journaled short of its own report: soak-sized CI run, 505 against 507.21 paise.)"""

from execution_worker import closed_day
from shared.messages import to_paise
from shared.trading.order import Order, OrderState, TransactionType


def _order(**kw) -> Order:
    return Order(tag="t", user_id="u", kind="entry", exchange="NSE", tradingsymbol="INFY", transaction_type=TransactionType.BUY,
                 order_type="LIMIT", product="CNC", quantity=20_000, order_id="1", state=OrderState.CANCELLED,
                 day="2026-12-01", exchange_timestamp="2026-12-01 14:10:00", **kw)


def _value(fills) -> int:
    return sum(to_paise(t.average_price) * t.quantity for t in fills)


def test_the_reported_part_is_worth_what_the_average_leaves_and_the_rest_the_average():
    # journaled 4,875 at 5.00 (24,375.00); the last report: 9,750 filled at 5.02 average (48,945.00)
    order = _order(filled_quantity=9_750, average_price=502, fill_quantity=4_875)
    journaled = 4_875 * 500
    value = closed_day.unheard_value(order, 20_000 - 4_875, journaled)
    assert value == 502 * 9_750 - journaled + 502 * (20_000 - 9_750)
    fills = closed_day.fills_worth(order, 20_000 - 4_875, value, "unheard:{order_id}:20000:{price}")
    assert sum(t.quantity for t in fills) == 15_125 and _value(fills) == value
    assert journaled + _value(fills) == 502 * 20_000  # the order's journal is worth its report's average, whole
    assert {t.trade_id for t in fills} == {f"unheard:1:20000:{to_paise(t.average_price)}" for t in fills}


def test_nothing_reported_beyond_the_journal_goes_at_the_average():
    order = _order(filled_quantity=4_875, average_price=500, fill_quantity=4_875)
    assert closed_day.unheard_value(order, 15_125, 4_875 * 500) == 500 * 15_125


def test_less_than_the_reported_part_takes_its_share():
    order = _order(filled_quantity=9_750, average_price=502, fill_quantity=4_875)
    journaled = 4_875 * 500
    assert closed_day.unheard_value(order, 975, journaled) == (502 * 9_750 - journaled) * 975 // 4_875


def test_no_report_no_value():
    assert closed_day.unheard_value(_order(), 100, 0) is None
