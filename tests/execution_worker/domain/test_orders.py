"""The order model (its transition table and events), tags, and the 2026 exchange rules applied to requests:
market protection on every MARKET order and slices at the freeze quantity."""

from datetime import date

import pytest

from shared.kite.models import Instrument
from shared.messages import OrderStatus, OrderType, TransactionType
from shared.trading import planning as o
from shared.trading.order import (
    TRANSITIONS,
    Applied,
    BrokerUpdate,
    CancelRequested,
    Fill,
    Order,
    OrderState,
    Placed,
    Submitted,
    SubmitFailed,
    can_move,
    is_terminal,
    parse_status,
)

from .kit import signal

S = OrderStatus
O = OrderState


def nifty_option(lot=65):
    return Instrument(instrument_token=12345, exchange_token=48, tradingsymbol="NIFTY26D0126000CE", name="NIFTY",
                      last_price=120.0, expiry=date(2026, 12, 1), strike=26000.0, tick_size=0.05, lot_size=lot,
                      instrument_type="CE", segment="NFO-OPT", exchange="NFO")


@pytest.mark.parametrize("current,new", [
    (O.INITIALIZED, O.SUBMITTING), (O.SUBMITTING, O.OPEN), (O.SUBMITTING, O.UNKNOWN), (O.UNKNOWN, O.COMPLETE),
    (O.UNKNOWN, O.FAILED), (O.PLACED, O.OPEN_PENDING), (O.PUT_ORDER_REQ_RECEIVED, O.VALIDATION_PENDING),
    (O.VALIDATION_PENDING, O.OPEN), (O.OPEN_PENDING, O.REJECTED), (O.OPEN, O.TRIGGER_PENDING),
    (O.TRIGGER_PENDING, O.OPEN), (O.OPEN, O.MODIFY_VALIDATION_PENDING), (O.MODIFY_PENDING, O.MODIFIED),
    (O.MODIFIED, O.OPEN), (O.OPEN, O.CANCEL_PENDING), (O.CANCEL_PENDING, O.COMPLETE), (O.OPEN, O.COMPLETE),
    (O.OPEN, O.CANCELLED),
    (O.CANCELLED, O.COMPLETE),  # a fill that beat the cancel: the exchange has the last word
    (O.FAILED, O.COMPLETE),  # a submit thought failed that the broker turns out to have
    (O.COMPLETE, O.COMPLETE),
])
def test_allowed_transitions(current, new):
    assert can_move(current, new)


@pytest.mark.parametrize("current,new", [
    (O.COMPLETE, O.OPEN), (O.COMPLETE, O.CANCELLED), (O.COMPLETE, O.REJECTED), (O.REJECTED, O.OPEN),
    (O.REJECTED, O.COMPLETE), (O.CANCELLED, O.OPEN), (O.CANCELLED, O.REJECTED),
    (O.OPEN, O.OPEN_PENDING), (O.OPEN, O.PUT_ORDER_REQ_RECEIVED), (O.TRIGGER_PENDING, O.VALIDATION_PENDING),
    (O.OPEN_PENDING, O.VALIDATION_PENDING), (O.OPEN, O.UNKNOWN), (O.INITIALIZED, O.OPEN), (O.COMPLETE, O.SUBMITTING),
])
def test_refused_transitions(current, new):
    assert not can_move(current, new)


def test_the_table_covers_every_state_and_final_states_are_final():
    assert set(TRANSITIONS) == set(O)
    for status in S:  # every Kite status is a state, parsed once
        assert parse_status(status.value) is O(status.value)
    assert parse_status("CANCELLED AMO") is O.CANCELLED and parse_status("SOMETHING NEW") is None
    for final in (O.COMPLETE, O.CANCELLED, O.REJECTED):
        assert is_terminal(final) and is_terminal(final.value)
        assert not (TRANSITIONS[final] - {O.COMPLETE})  # only a late fill moves a final order
    for state in (O.SUBMITTING, O.UNKNOWN, O.PLACED):  # lost submits end wherever the broker says
        assert {O(s.value) for s in S} <= TRANSITIONS[state] and not is_terminal(state)


def an_order(qty=10):
    req = o.order_request("AB1234", signal_id="sig-1", kind="entry", exchange="NSE", tradingsymbol="INFY",
                          instrument_token=408065, side=TransactionType.BUY, quantity=qty, product="MIS",
                          order_type=OrderType.MARKET)
    return Order.from_request(req, strategy_id="s1", created="2026-11-24 10:00:00")


def update(state: str, filled=0, message="", order_id="O1"):
    return BrokerUpdate(order_id=order_id, state=parse_status(state), status=state, filled_quantity=filled,
                        status_message=message)


def test_an_order_lives_through_its_events_and_refuses_a_stale_one():
    order = an_order()
    assert order.state is O.INITIALIZED and order.remaining == 10 and not order.is_working
    assert order.apply(Submitted()).state_changed and order.state is O.SUBMITTING
    assert order.apply(Placed(order_id="O1")).ok and order.order_id == "O1"
    assert order.apply(update("OPEN", filled=4)) == Applied(True, state_changed=True, filled=4, state=O.OPEN)
    assert (order.filled_quantity, order.remaining, order.unjournaled) == (4, 6, 4)
    assert order.apply(Fill(trade_id="T1", quantity=4, price=150000)).journaled == 4
    assert order.apply(Fill(trade_id="T1", quantity=4, price=150000)).journaled == 0  # the same trade once
    assert order.unjournaled == 0
    assert order.apply(update("COMPLETE", filled=10)).filled == 6 and order.is_terminal and order.remaining == 0
    assert order.apply(update("OPEN", filled=4)) == Applied(False)  # late: refused, nothing changed
    assert (order.state, order.filled_quantity) == (O.COMPLETE, 10)


def test_the_post_s_answer_after_the_broker_s_own_update_changes_nothing():
    """Kite's WebSocket update can beat the POST's response: the order is OPEN (or filled) when its answer says
    'placed'. That is no news, not a refused transition; an answer naming another order id still is refused."""
    order = an_order()
    order.apply(Submitted())
    order.apply(update("OPEN", order_id="O1"))
    assert order.apply(Placed(order_id="O1")) == Applied(True)
    assert (order.state, order.order_id) == (O.OPEN, "O1")
    order.apply(update("COMPLETE", filled=10, order_id="O1"))
    assert order.apply(Placed(order_id="O1")) == Applied(True) and order.state is O.COMPLETE
    assert order.apply(Placed(order_id="O9")) == Applied(False) and order.order_id == "O1"


def test_kta_cancellations_are_labelled_as_kta_s_own():
    order = an_order()
    order.apply(Submitted())
    order.apply(Placed(order_id="O1"))
    order.apply(update("OPEN"))
    order.apply(CancelRequested(reason="group g1 rolled back"))
    order.apply(update("CANCELLED", message="Cancelled by user"))
    assert order.status_message == "cancelled by kta: group g1 rolled back"
    other = an_order()
    other.apply(Submitted())
    other.apply(Placed(order_id="O2"))
    other.apply(update("CANCELLED", message="Cancelled by user", order_id="O2"))
    assert other.status_message == "Cancelled by user"  # the trader's own cancel in Kite stays theirs


def test_a_failed_submit_can_be_found_at_the_broker_after_all():
    order = an_order()
    order.apply(Submitted())
    assert order.apply(SubmitFailed(reason="NetworkException: timeout")).ok and order.state is O.FAILED
    assert order.status == "REJECTED"
    assert order.apply(update("COMPLETE", filled=10)).ok and order.state is O.COMPLETE


def test_an_order_carries_leg_and_slice_as_fields():
    req = o.order_request("AB1234", group_id="g1", kind="rollback", exchange="NFO", tradingsymbol="X",
                          instrument_token=1, side=TransactionType.SELL, quantity=65, product="NRML",
                          order_type=OrderType.LIMIT, price=100, index=51, slice_no=3)
    order = Order.from_request(req)
    assert (order.kind, order.leg, order.slice_no, order.group_id) == ("rollback", 51, 3, "g1")
    assert o.tag_fields(req.tag) == ("rollback", 51, 3)


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
