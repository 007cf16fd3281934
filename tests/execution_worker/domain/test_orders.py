"""The order state machine's transition table, tags, and the 2026 exchange rules applied to requests:
market protection on every MARKET order and slices at the freeze quantity."""

from datetime import date

import pytest

from execution_worker import orders as o
from shared.kite.models import Instrument
from shared.messages import OrderStatus, OrderType, TransactionType

from .kit import signal

S = OrderStatus
FINAL = [S.COMPLETE.value, S.CANCELLED.value, S.REJECTED.value]


def nifty_option(lot=65):
    return Instrument(instrument_token=12345, exchange_token=48, tradingsymbol="NIFTY26D0126000CE", name="NIFTY",
                      last_price=120.0, expiry=date(2026, 12, 1), strike=26000.0, tick_size=0.05, lot_size=lot,
                      instrument_type="CE", segment="NFO-OPT", exchange="NFO")


@pytest.mark.parametrize("current,new", [
    ("", "OPEN"), (o.SUBMITTING, "OPEN"), (o.SUBMITTING, o.UNKNOWN), (o.UNKNOWN, "COMPLETE"), (o.UNKNOWN, o.FAILED),
    (o.PLACED, "OPEN PENDING"), ("PUT ORDER REQ RECEIVED", "VALIDATION PENDING"), ("VALIDATION PENDING", "OPEN"),
    ("OPEN PENDING", "REJECTED"), ("OPEN", "TRIGGER PENDING"), ("TRIGGER PENDING", "OPEN"),
    ("OPEN", "MODIFY VALIDATION PENDING"), ("MODIFY PENDING", "MODIFIED"), ("MODIFIED", "OPEN"),
    ("OPEN", "CANCEL PENDING"), ("CANCEL PENDING", "COMPLETE"), ("OPEN", "COMPLETE"), ("OPEN", "CANCELLED"),
    ("CANCELLED", "COMPLETE"),  # a fill that beat the cancel: the exchange has the last word
    (o.FAILED, "COMPLETE"),  # a submit thought failed that the broker turns out to have
    ("COMPLETE", "COMPLETE"),
])
def test_allowed_transitions(current, new):
    assert o.can_move(current, new)


@pytest.mark.parametrize("current,new", [
    ("COMPLETE", "OPEN"), ("COMPLETE", "CANCELLED"), ("COMPLETE", "REJECTED"), ("REJECTED", "OPEN"),
    ("REJECTED", "COMPLETE"), ("CANCELLED", "OPEN"), ("CANCELLED", "REJECTED"),
    ("OPEN", "OPEN PENDING"), ("OPEN", "PUT ORDER REQ RECEIVED"), ("TRIGGER PENDING", "VALIDATION PENDING"),
    ("OPEN PENDING", "VALIDATION PENDING"), (o.UNKNOWN, o.SUBMITTING), ("OPEN", o.UNKNOWN),
])
def test_refused_transitions(current, new):
    assert not o.can_move(current, new)


def test_the_table_covers_every_kite_status_and_final_states_are_final():
    for status in S:
        assert status.value in o.TRANSITIONS
    for final in FINAL:
        assert o.is_terminal(final)
        assert not (o.TRANSITIONS[final] - {S.COMPLETE.value})  # only a late fill moves a final order
    for state in (o.SUBMITTING, o.UNKNOWN, o.PLACED):  # lost submits end wherever the broker says
        assert {s.value for s in S} <= o.TRANSITIONS[state] and not o.is_terminal(state)


def test_tags_are_deterministic_short_and_recognised():
    a = o.make_tag("sig-123", "entry", 0, 1)
    assert a == o.make_tag("sig-123", "entry", 0, 1) and len(a) == 20 and a.isalnum()
    assert a != o.make_tag("sig-123", "entry", 0, 2) != o.make_tag("sig-124", "entry", 0, 1)
    assert o.is_kta_tag(a) and not o.is_kta_tag("manual") and not o.is_kta_tag(None)


def test_market_orders_always_carry_market_protection():
    sig = signal(qty=10, order_type=OrderType.MARKET)
    (req,) = o.signal_requests(sig, None, market_protection=-1)
    assert req.order_type is OrderType.MARKET and req.market_protection == -1 and req.price == 0
    (req,) = o.signal_requests(sig, None, market_protection=3)
    assert req.market_protection == 3
    limit = o.signal_requests(signal(qty=10, order_type=OrderType.LIMIT, price=150003), None, market_protection=-1)
    assert limit[0].market_protection == 0 and limit[0].price == 150000  # buy limit rounded down to the tick


def test_nifty_option_above_the_freeze_quantity_is_sliced_into_lots():
    inst = nifty_option()
    qty = 65 * 40  # 2,600 units, above NIFTY's freeze quantity of 1,800
    sig = signal(symbol=inst.tradingsymbol, qty=qty, exchange="NFO", order_type=OrderType.MARKET)
    reqs = o.signal_requests(sig, inst, market_protection=-1)
    assert [r.quantity for r in reqs] == [1755, 845]
    assert all(r.quantity <= o.FREEZE["NIFTY"] and r.quantity % 65 == 0 for r in reqs)
    assert sum(r.quantity for r in reqs) == qty and len({r.tag for r in reqs}) == 2
    assert all(r.market_protection == -1 for r in reqs)
    assert [r.quantity for r in o.signal_requests(signal(symbol=inst.tradingsymbol, qty=1755, exchange="NFO"), inst, -1)] \
        == [1755]


@pytest.mark.parametrize("qty,lot,freeze", [(1, 1, 0), (7000, 30, 900), (1801, 1, 1800), (65 * 100, 65, 1800)])
def test_slices_sum_to_the_quantity_within_the_freeze(qty, lot, freeze):
    parts = o.slices(qty, lot, freeze)
    assert sum(parts) == qty and all(p <= (freeze or qty) for p in parts)


def test_stop_loss_is_an_sl_order_with_slippage_beyond_the_trigger():
    sig = signal(qty=10, stop_loss=147000, target=156000)
    sl, tgt = o.protective_requests(sig, 10, None, slippage_pct=0.5)
    assert (sl.order_type, sl.transaction_type, sl.trigger_price, sl.price) == (
        OrderType.SL, TransactionType.SELL, 147000, 147000 - 735)
    assert (tgt.order_type, tgt.price, tgt.quantity) == (OrderType.LIMIT, 156000, 10)
