"""What the dashboard is told protects a position (``shared.trading.protection_status``): the GTT's legs
told apart by side, the SL order, what they cover against what is held, and why not, in words."""

from datetime import date

import pytest

from shared.kite.models import Gtt, GttCondition, GttLeg, Instrument
from shared.messages import OrderRequest, OrderType, Position, Product, TransactionType
from shared.trading.order import Order
from shared.trading.protection import Protection
from shared.trading.protection_status import gtt_guard, judge, option_cover

from .kit import USER


def gtt(side: str, values: list[float], qty: int, status: str = "active") -> Gtt:
    return Gtt(id=41, status=status, type="two-leg" if len(values) > 1 else "single",
               condition=GttCondition(exchange="NSE", tradingsymbol="INFY", trigger_values=values),
               orders=[GttLeg(transaction_type=side, quantity=qty, price=v) for v in values])


def stop_order(qty: int, filled: int = 0, order_type: OrderType = OrderType.SL) -> Order:
    req = OrderRequest(user_id=USER, exchange="NSE", tradingsymbol="TCS", transaction_type=TransactionType.SELL,
                       order_type=order_type, quantity=qty, product=Product.MIS, price=289000, trigger_price=290000,
                       tag="kstop1", kind="stop_loss")
    o = Order.from_request(req, strategy_id="s1")
    o.order_id, o.status, o.filled_quantity = "2612", "TRIGGER PENDING", filled
    return o


def held(qty: int, product: str = "MIS", symbol: str = "TCS") -> Position:
    return Position(tradingsymbol=symbol, exchange="NSE", product=product, quantity=qty, strategy_id="s1")


def plan(**kw) -> Protection:
    return Protection(user_id=USER, strategy_id="s1", exchange="NSE", tradingsymbol="TCS", **kw)


def test_a_gtt_shows_its_stop_and_target_by_the_side_it_sells():
    long_ = gtt_guard(41, gtt("SELL", [1350.0, 1650.0], 10))
    assert (long_.stop, long_.target, long_.quantity, long_.status) == (135000, 165000, 10, "active")
    short = gtt_guard(41, gtt("BUY", [1350.0, 1650.0], 4))
    assert (short.stop, short.target) == (165000, 135000)
    single = gtt_guard(41, gtt("SELL", [1350.0], 10))
    assert (single.stop, single.target) == (135000, 0)
    assert gtt_guard(41, None).status == "gone" and gtt_guard(41, None, read=False).status == "unread"


@pytest.mark.parametrize("position, p, gtts, orders, closing, in_doubt, state, note", [
    (held(10), plan(stop=290000), [], [stop_order(10)], 0, False, "protected", ""),
    (held(10), plan(stop=290000), [], [stop_order(10, filled=4)], 0, False, "partial",
     "no working stop at the broker (4 of 10 uncovered)"),
    (held(10), None, [], [], 0, False, "unprotected", "no stop-loss set"),
    (held(10), plan(target=330000), [], [], 0, False, "unprotected", "a target but no stop-loss"),
    (held(10), plan(stop=290000, mode="failed"), [], [], 0, False, "unprotected",
     "its stop was rejected twice and kta sent an order to close it"),
    (held(10), plan(stop=290000), [], [], 0, True, "unprotected",
     "its stop ended outside kta: none is placed until the broker's positions are checked"),
    (held(10), plan(stop=290000), [], [], 10, False, "closing", "an exit of 10 is working"),
    (held(10, "CNC"), plan(stop=135000, product="CNC", gtt_ids=[41]), [gtt_guard(41, gtt("SELL", [1350, 1650], 10))],
     [], 0, False, "protected", ""),
    (held(10, "CNC"), plan(stop=135000, product="CNC", gtt_ids=[41]),
     [gtt_guard(41, gtt("SELL", [1350, 1650], 10, status="triggered"))], [], 0, False, "unprotected",
     "no working stop at the broker"),
    (held(10, "CNC"), plan(stop=135000, product="CNC", gtt_ids=[41]), [gtt_guard(41, None, read=False)], [], 0,
     False, "unprotected", "the broker's GTT book could not be read"),
])
def test_what_covers_the_position_and_why_not(position, p, gtts, orders, closing, in_doubt, state, note):
    s = judge(position, p, gtts, orders, closing, in_doubt)
    assert (s.state, s.note) == (state, note)
    assert s.covered <= abs(position.quantity)
    assert [g.kind for g in s.guards] == ["gtt"] * len(gtts) + ["sl"] * len(orders)


def option(symbol: str, kind: str, expiry: str = "2026-12-29", name: str = "NIFTY"):
    return Instrument(instrument_token=len(symbol), exchange_token=1, tradingsymbol=symbol, name=name, last_price=0,
                      expiry=date.fromisoformat(expiry), strike=26000, tick_size=0.05, lot_size=65,
                      instrument_type=kind, segment="NFO-OPT", exchange="NFO")


def test_a_bought_option_and_a_short_one_its_wing_covers_need_no_stop_but_a_naked_short_does():
    insts = {s: option(s, s[-2:]) for s in ("N26000CE", "N26500CE", "N25500PE", "N25000PE", "B59000CE")}
    insts["B59000CE"] = option("B59000CE", "CE", name="BANKNIFTY")
    legs = [("ic", "N26000CE", -65), ("ic", "N26500CE", 65), ("ic", "N25500PE", -130), ("ic", "N25000PE", 65),
            ("other", "N26500CE", 65), ("ic", "B59000CE", 30)]
    positions = [Position(tradingsymbol=s, exchange="NFO", product="NRML", quantity=q, strategy_id=k)
                 for k, s, q in legs]
    cover = option_cover(positions, lambda x, s: insts.get(s))
    assert cover == {("ic", "NFO", "N26000CE"): "hedged", ("ic", "NFO", "N26500CE"): "long",
                     ("ic", "NFO", "N25000PE"): "long", ("other", "NFO", "N26500CE"): "long",
                     ("ic", "NFO", "B59000CE"): "long"}  # the 130 PE short has a 65 wing: not hedged
    hedged = judge(positions[0], None, [], [], 0, False, cover[("ic", "NFO", "N26000CE")])
    naked = judge(positions[2], None, [], [], 0, False, cover.get(("ic", "NFO", "N25500PE"), ""))
    assert (hedged.state, naked.state, naked.note) == ("hedged", "unprotected", "no stop-loss set")


def test_a_contract_past_its_expiry_close_is_settling_not_unprotected():
    """From its expiry's close until the broker drops it (on Kite: the next morning) a held future's GTT is expired
    and nothing may replace it: the broker settles the position. Shown as such (amber), not flagged unprotected all
    evening."""
    fut = Position(tradingsymbol="NIFTY26DECFUT", exchange="NFO", instrument_token=1, product="NRML", quantity=65,
                   strategy_id="f")
    plan = Protection(user_id=USER, strategy_id="f", exchange="NFO", tradingsymbol="NIFTY26DECFUT",
                      instrument_token=1, product="NRML", stop=2_576_310_0, target=2_636_310_0, gtt_ids=[1])
    s = judge(fut, plan, [], [], 0, True, "settling")
    assert (s.state, s.covered) == ("settling", 0) and s.note.startswith("expires at today's close")
