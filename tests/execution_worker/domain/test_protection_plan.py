"""The protection plan: one stop for exactly what is held, following fills, sliced at the freeze
quantity, cancelled when flat, turned into a limit at the target, corrected after a rejection."""

from datetime import date

from shared.kite.models import Instrument
from shared.messages import OrderType, TransactionType
from shared.trading.order import BrokerUpdate, Order, Placed, Submitted, parse_status
from shared.trading.protection import (
    Cancel,
    Modify,
    Place,
    Protection,
    corrected_stop,
    default_stop,
    plan,
    stop_request,
    stop_returned,
    stopped_actions,
    target_actions,
    target_reached,
)

from .kit import USER


def infy_plan(**kw) -> Protection:
    fields = {"stop": 147000, "target": 156000, **kw}
    return Protection(user_id=USER, strategy_id="s1", exchange="NSE", tradingsymbol="INFY", instrument_token=408065,
                      signal_id="sig1", **fields)


def working_stop(p: Protection, quantity: int, filled: int = 0, slice_no: int = 0, side="SELL") -> Order:
    order = Order.from_request(stop_request(p, TransactionType(side), quantity, slice_no, 0.5, None), strategy_id="s1")
    for event in (Submitted(), Placed(order_id=f"O{slice_no}"),
                  BrokerUpdate(order_id=f"O{slice_no}", state=parse_status("TRIGGER PENDING"),
                               filled_quantity=filled)):
        order.apply(event)
    return order


def nifty() -> Instrument:
    return Instrument(instrument_token=1, exchange_token=1, tradingsymbol="NIFTY26D0126000CE", name="NIFTY",
                      last_price=0.0, expiry=date(2026, 12, 1), strike=26000.0, tick_size=0.05, lot_size=65,
                      instrument_type="CE", segment="NFO-OPT", exchange="NFO")


def test_the_first_fill_places_one_stop_and_later_fills_grow_it():
    p = infy_plan()
    (place,) = plan(p, held=20, closing=0, working=[], inst=None, slippage_pct=0.5)
    assert isinstance(place, Place) and place.request.quantity == 20 and place.request.order_type is OrderType.SL
    assert (place.request.trigger_price, place.request.price, place.request.transaction_type) == (
        147000, 146265, TransactionType.SELL)
    live = working_stop(p, 20)
    assert plan(p, held=20, closing=0, working=[live], inst=None, slippage_pct=0.5) == []
    (grow,) = plan(p, held=35, closing=0, working=[live], inst=None, slippage_pct=0.5)
    assert isinstance(grow, Modify) and grow.quantity == 35 and not grow.trigger_price


def test_working_exits_and_a_flat_book_shrink_and_cancel_the_stop():
    p = infy_plan()
    live = working_stop(p, 20)
    (shrink,) = plan(p, held=20, closing=15, working=[live], inst=None, slippage_pct=0.5)
    assert isinstance(shrink, Modify) and shrink.quantity == 5
    (cancel,) = plan(p, held=0, closing=0, working=[live], inst=None, slippage_pct=0.5)
    assert isinstance(cancel, Cancel)
    (gone,) = plan(p, held=20, closing=20, working=[live], inst=None, slippage_pct=0.5)
    assert isinstance(gone, Cancel)


def test_a_stop_above_the_freeze_quantity_is_sliced_and_tags_never_repeat():
    p = infy_plan()
    inst = nifty()
    first = plan(p, held=1820, closing=0, working=[], inst=inst, slippage_pct=0.5)
    assert [a.request.quantity for a in first] == [1755, 65]
    again = plan(p, held=1820, closing=0, working=[], inst=inst, slippage_pct=0.5)  # both were cancelled
    assert {a.request.tag for a in first}.isdisjoint({a.request.tag for a in again})


def test_a_new_stop_price_modifies_the_trigger_and_the_wrong_side_is_cancelled():
    p = infy_plan()
    live = working_stop(p, 20)
    p.stop = 148000
    (move,) = plan(p, held=20, closing=0, working=[live], inst=None, slippage_pct=0.5)
    assert isinstance(move, Modify) and (move.trigger_price, move.price) == (148000, 148000 - 740)
    actions = plan(p, held=-20, closing=0, working=[live], inst=None, slippage_pct=0.5)  # the position flipped
    assert isinstance(actions[0], Cancel) and isinstance(actions[1], Place)
    assert actions[1].request.transaction_type is TransactionType.BUY


def test_the_target_is_watched_and_turns_the_stop_into_a_limit():
    p = infy_plan()
    assert not target_reached(p, 10, 155995) and target_reached(p, 10, 156000)
    short = infy_plan(stop=153000)
    short.target = 144000
    assert not target_reached(short, -10, 145000) and target_reached(short, -10, 144000)
    live = working_stop(p, 10)
    (limit,) = target_actions(p, [live], None)
    assert (limit.order_type, limit.price, limit.quantity) == ("LIMIT", 156000, 0)
    p.mode = "target"
    assert not target_reached(p, 10, 160000)  # once


def test_back_at_the_stop_while_the_target_limit_waits_it_moves_to_the_stop_limit():
    p = infy_plan()
    live = working_stop(p, 10)
    assert not stop_returned(p, 10, 146000)  # the SL itself is working: nothing to take over
    p.mode = "target"
    assert not stop_returned(p, 10, 147005) and stop_returned(p, 10, 147000) and not stop_returned(p, 0, 140000)
    (back,) = stopped_actions(p, 10, [live], None, 0.5)
    assert (back.order_type, back.price, back.quantity) == ("LIMIT", 146265, 0)  # 1470 less 0.5 %: the SL's limit
    short = infy_plan(stop=153000, target=144000, mode="target")
    assert not stop_returned(short, -10, 152995) and stop_returned(short, -10, 153100)
    (back,) = stopped_actions(short, -10, [working_stop(short, 10, side="BUY")], nifty(), 0.5)
    assert (back.order_type, back.price) == ("LIMIT", 153765)  # 1530 plus 0.5 %
    p.mode = "stopped"
    assert not stop_returned(p, 10, 140000) and not target_reached(p, 10, 160000)  # once, and never back


def test_a_corrected_stop_sits_below_the_price_with_its_limit_in_the_band():
    p = infy_plan(stop=151000)  # above the last price: the exchange refused it
    assert corrected_stop(p, 10, 150000, 0, 0, None, 0.5) == 150000 - 750
    p.stop = 136000  # its limit (trigger − 0.5 %) would fall below the lower circuit
    stop = corrected_stop(p, 10, 150000, 135500, 165000, None, 0.5)
    assert stop - max(5, stop * 5 // 1000) >= 135500
    short = infy_plan(stop=149000)
    assert corrected_stop(short, -10, 150000, 0, 0, None, 0.5) == 150000 + 750


def test_a_default_or_corrected_stop_stands_clear_of_a_cheap_contracts_price():
    """A ₹1.40 option: 2 % is 2.8 paise, a tick is 5 — a stop one tick away was refused "too close to the
    last price" twice and the position flattened on Stop. At least 10 paise, half a percent, a tick."""
    option = Instrument(instrument_token=1, exchange_token=1, tradingsymbol="NIFTY26D0126350CE", name="NIFTY",
                        last_price=0, expiry=None, strike=26350, tick_size=0.05, lot_size=65, instrument_type="CE",
                        segment="NFO-OPT", exchange="NFO")
    assert default_stop(140, -65, 2.0, option) == 150  # a short's stop above, clear of the price
    assert default_stop(140, 65, 2.0, option) == 130
    assert default_stop(150000, 10, 2.0, None) == 147000  # shares: 2 % as before
    assert default_stop(150000, -10, 2.0, None) == 153000
    short = Protection(user_id="U", strategy_id="s", exchange="NFO", tradingsymbol="NIFTY26D0126350CE", stop=145)
    assert corrected_stop(short, -65, 140, 0, 0, option, 0.5) == 150
