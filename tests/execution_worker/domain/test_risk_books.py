"""Risk judged on what the broker will hold: plans and contexts from the position and order books, positions net
per (instrument, product) across strategies, exposure at the larger side, one product per strategy and
instrument, delivery never selling shares not held, and a restart that judges no loss before the day's P&L."""

import pytest

from shared.messages import Exchange, KillSwitchState, OrderType, Position, Product, RiskLimits
from shared.trading.book import OrderBook
from shared.trading.order import BrokerUpdate, Order, OrderState, Placed, Submitted, parse_status
from shared.trading.planning import flatten_plan, order_request
from shared.trading.positions import PositionTracker
from shared.trading.risk import RiskCode, RiskManager, context_from

from .kit import USER, journal, signal
from .risk_kit import LIMITS, LTP, books, infy

# ---- plans and contexts ------------------------------------------------------------------------

def test_flatten_plan_closes_shorts_before_hedges():
    positions = [Position(tradingsymbol="NIFTY26N24000PE", exchange="NFO", quantity=50, product="NRML"),
                 Position(tradingsymbol="NIFTY26N24500PE", exchange="NFO", quantity=-50, product="NRML"),
                 Position(tradingsymbol="INFY", exchange="NSE", quantity=0),
                 Position(tradingsymbol="NIFTY26N25500CE", exchange="NFO", quantity=-50, product="NRML")]
    plan = flatten_plan(USER, positions, "flatten1")
    assert [(o.tradingsymbol, o.transaction_type, o.quantity) for o in plan] == [
        ("NIFTY26N24500PE", "BUY", 50), ("NIFTY26N25500CE", "BUY", 50), ("NIFTY26N24000PE", "SELL", 50)]
    assert all(o.order_type == "MARKET" and o.market_protection == -1 and o.kind == "flatten" for o in plan)
    assert all(o.product is Product.NRML and o.exchange is Exchange.NFO for o in plan)  # enums, as placing needs
    assert len({o.tag for o in plan}) == 3 and plan == flatten_plan(USER, reversed(positions), "flatten1")


def an_infy_order(strategy_id: str, kind: str, quantity: int, order_id: str, status: str, filled: int) -> Order:
    """A MARKET SELL of INFY in MIS placed by ``strategy_id``, as the broker last reported it (nothing journaled)."""
    order = Order.from_request(order_request(USER, signal_id=f"{strategy_id}-{order_id}", kind=kind, exchange="NSE",
                                             tradingsymbol="INFY", instrument_token=408065, side="SELL", quantity=quantity,
                                             product="MIS", order_type=OrderType.MARKET), strategy_id=strategy_id)
    for event in (Submitted(), Placed(order_id=order_id), BrokerUpdate(order_id=order_id, state=parse_status(status),
                                                                       filled_quantity=filled)):
        order.apply(event)
    return order


def test_context_from_the_position_book_and_the_order_book(risk):
    tracker = PositionTracker()
    tracker.on_fill(strategy_id="s1", exchange="NSE", tradingsymbol="INFY", transaction_type="BUY", quantity=90,
                    price=1500_00, instrument_token=408065)
    tracker.on_fill(strategy_id="s9", exchange="NSE", tradingsymbol="INFY", transaction_type="SELL", quantity=30,
                    price=1500_00, instrument_token=408065)
    book = OrderBook()
    working = an_infy_order("s1", "exit", 40, "O1", "OPEN", filled=10)
    book.add(working)
    ctx = context_from(tracker, book, signal("x", side="SELL", qty=90, intent="exit"), prices={"NSE:INFY": 1510_00})
    h = ctx.holding("NSE", "INFY")
    # the exit's 30 to fill and its 10 filled at the broker that the position book lacks yet both close s1's 90
    assert (h.held, h.pending, h.account, h.account_pending, h.last_price, h.exitable) == (90, -40, 60, -40,
                                                                                           1510_00, 50)
    assert ctx.open_orders == 1 and working.state is OrderState.OPEN
    assert risk.validate_signal(signal("x", side="SELL", qty=90, intent="exit"), ctx).quantities == (50,)


def test_an_order_filled_at_the_broker_and_not_yet_journaled_counts_toward_what_the_broker_will_hold(risk):
    """Between the broker's COMPLETE and its trades landing in the journal an order is neither working nor in the
    position book: judged then, another strategy's entry took the broker past the limit (soak seed 19, TCS -31 with
    a limit of 30). Its fills count as pending until journaled; it is not an open order any more."""
    tracker = PositionTracker()
    for sid, qty in (("s2", 60), ("s5", 30)):
        tracker.on_fill(strategy_id=sid, exchange="NSE", tradingsymbol="INFY", transaction_type="SELL", quantity=qty,
                        price=LTP, instrument_token=408065, product="MIS")
    filled = an_infy_order("s3", "entry", 5, "O3", "COMPLETE", filled=5)
    book = OrderBook()
    book.add(filled)
    s = signal("s1-1", side="SELL", qty=8, strategy_id="s1")
    ctx = context_from(tracker, book, s, prices={"NSE:INFY": LTP})
    h = ctx.holding("NSE", "INFY")
    assert (h.account_short, h.account_pending, ctx.open_orders, filled.unjournaled) == (90, -5, 0, 5)
    decision = risk.validate_signal(s, ctx)  # 90 held short + 5 filled + 8 > 100
    assert (decision.ok, decision.code) == (False, RiskCode.POSITION_SIZE), decision


# ---- what the broker will hold: positions net per (instrument, product) across strategies ---------

NET_LIMITS = RiskLimits(max_daily_loss=10_000_00, max_position_qty=200, max_position_lots=4,
                        max_exposure=250_000_00, max_orders_per_minute=50, max_open_orders=10,
                        max_exposure_per_symbol=200_000_00, max_exposure_per_strategy=150_000_00,
                        max_net_delta=500.0, max_net_vega=1_000.0)
NETTING = [  # (the strategies' fills, the signal: strategy, side, quantity, product; ok or refusal code) at ₹1,500
    ([("s1", "BUY", 150, "MIS")], ("s2", "SELL", 100, "MIS"), None),  # the broker 150 -> 50, at most 150 if s1 exits
    ([("s1", "BUY", 150, "MIS")], ("s2", "BUY", 40, "MIS"), RiskCode.EXPOSURE_LIMIT),  # 190 × ₹1,500 > ₹2.5 lakh
    ([("s1", "BUY", 150, "MIS")], ("s2", "SELL", 100, "CNC"), RiskCode.DELIVERY_SHORT),  # no delivery short (and
    # another product never nets: the CNC short fills below count beside the MIS long)
    ([("s1", "BUY", 150, "MIS"), ("s2", "SELL", 60, "MIS")], ("s2", "SELL", 50, "MIS"),
     RiskCode.STRATEGY_EXPOSURE),  # the strategy's own 110 × ₹1,500 > ₹1.5 lakh, though the account shrinks
    ([("s1", "BUY", 150, "MIS"), ("s2", "SELL", 150, "MIS")], ("s3", "BUY", 100, "MIS"),
     RiskCode.POSITION_SIZE),  # the broker is flat, but once s2 exits it holds 150 + 100
    ([("s1", "BUY", 50, "MIS"), ("s2", "SELL", 150, "MIS")], ("s3", "SELL", 60, "MIS"),
     RiskCode.POSITION_SIZE),  # net -160 is within 200, but s1's exit (never refused) leaves -210 (the soak's TCS -31)
    ([("s1", "BUY", 150, "MIS"), ("s2", "SELL", 100, "MIS")], ("s3", "BUY", 60, "MIS"),
     RiskCode.POSITION_SIZE),  # its own 60 and the net 110 are within 200, the long side's 210 is not
    ([("s1", "BUY", 150, "MIS"), ("s2", "SELL", 150, "CNC")], ("s3", "BUY", 100, "MIS"),
     RiskCode.POSITION_SIZE),  # MIS 150 + 100 > 200: the CNC short is a position of its own, not an offset
    ([("s1", "BUY", 150, "MIS"), ("s2", "SELL", 150, "CNC")], ("s3", "SELL", 40, "MIS"),
     None),  # against the MIS long: the broker's MIS position shrinks, and can come to no more than 150
]


@pytest.mark.parametrize("fills,sig,refused", NETTING, ids=[f"{'+'.join(f'{s}{x[0]}{q}{p}' for s, x, q, p in f)}"
                                                            f"-then-{g[0]}{g[1]}{g[2]}{g[3]}" for f, g, _ in NETTING])
def test_limits_judge_what_the_broker_will_hold(tmp_path, clock, fills, sig, refused):
    """Kite nets a user's fills per instrument and product: two strategies long and short INFY MIS are
    one position at the broker, their difference. Exits are never refused, so either side may close
    and leave the other alone: the account's position and exposure limits judge the larger side (the
    most the broker can come to hold), never the gross sum; each strategy's own limits judge its book."""
    risk = RiskManager(USER, NET_LIMITS, journal(tmp_path, clock), clock)
    tracker = PositionTracker()
    for strategy_id, side, qty, product in fills:
        tracker.on_fill(strategy_id=strategy_id, exchange="NSE", tradingsymbol="INFY", transaction_type=side,
                        quantity=qty, price=LTP, instrument_token=408065, product=product)
    strategy_id, side, qty, product = sig
    s = signal(f"net-{strategy_id}", strategy_id=strategy_id, side=side, qty=qty, product=Product(product))
    decision = risk.validate_signal(s, context_from(tracker, OrderBook(), s, prices={"NSE:INFY": LTP}))
    assert (decision.ok, decision.code or None) == (refused is None, refused), decision.reason


def test_the_position_book_exposure_is_the_brokers_and_at_risk_the_larger_side():
    tracker = PositionTracker()
    for strategy_id, side, product in (("s1", "BUY", "MIS"), ("s2", "SELL", "MIS"), ("s3", "SELL", "CNC")):
        tracker.on_fill(strategy_id=strategy_id, exchange="NSE", tradingsymbol="INFY", transaction_type=side,
                        quantity=100, price=LTP, instrument_token=408065, product=product)
    assert tracker.net_quantity("NSE", "INFY", "MIS") == 0 and tracker.net_quantity("NSE", "INFY", "CNC") == -100
    assert tracker.sides("NSE", "INFY", "MIS") == (100, 100) and tracker.sides("NSE", "INFY", "CNC") == (0, 100)
    assert tracker.exposure == 100 * LTP  # the broker holds the CNC short alone
    assert tracker.at_risk == 200 * LTP == tracker.at_risk_by_symbol()["INFY"]  # either MIS side may be left
    assert tracker.exposure_by_strategy() == {"s1": 100 * LTP, "s2": 100 * LTP, "s3": 100 * LTP}
    tracker.mark(408065, 1600_00)
    assert (tracker.exposure, tracker.at_risk) == (100 * 1600_00, 200 * 1600_00)
    tracker.on_fill(strategy_id="s2", exchange="NSE", tradingsymbol="INFY", transaction_type="BUY", quantity=150,
                    price=1600_00, instrument_token=408065, product="MIS")  # s2 closes and goes long 50
    assert tracker.sides("NSE", "INFY", "MIS") == (150, 0) and tracker.net_quantity("NSE", "INFY") == 50
    assert (tracker.exposure, tracker.at_risk) == (250 * 1600_00, 250 * 1600_00)


def test_a_stop_entry_with_its_trigger_beyond_the_market_is_accepted(risk):
    buy = signal(order_type=OrderType.SL_M, price=0, trigger_price=151000, stop_loss=150500)  # stop under the trigger
    sell = signal("sig2", side="SELL", order_type=OrderType.SL, price=148500, trigger_price=149000)
    for sig in (buy, sell):
        assert risk.validate_signal(sig, books(infy(lower=135000, upper=165000))).ok, sig


@pytest.mark.parametrize("intent,side,product,refused", [
    ("entry", "BUY", "CNC", RiskCode.PRODUCT_MISMATCH),  # a second position beside the MIS one
    ("exit", "SELL", "CNC", RiskCode.PRODUCT_MISMATCH),  # would open a CNC short, not close the MIS long
    ("exit", "SELL", "MIS", None),
    ("entry", "BUY", "MIS", None),
])
def test_one_strategy_holds_an_instrument_in_one_product(risk, intent, side, product, refused):
    tracker = PositionTracker()
    tracker.on_fill(strategy_id="s1", exchange="NSE", tradingsymbol="INFY", transaction_type="BUY", quantity=10,
                    price=LTP, instrument_token=408065, product="MIS")
    s = signal("mixed", side=side, qty=5, intent=intent, product=Product(product))
    decision = risk.validate_signal(s, context_from(tracker, OrderBook(), s, prices={"NSE:INFY": LTP}))
    assert (decision.ok, decision.code or None) == (refused is None, refused), decision.reason


def test_a_position_reopened_from_flat_is_held_in_the_new_product():
    tracker = PositionTracker()
    for side, qty, product in (("BUY", 10, "MIS"), ("SELL", 10, "MIS"), ("BUY", 5, "CNC")):
        tracker.on_fill(strategy_id="s1", exchange="NSE", tradingsymbol="INFY", transaction_type=side, quantity=qty,
                        price=LTP, instrument_token=408065, product=product)
    assert tracker.held_product("s1", "NSE", "INFY") == "CNC"
    assert [(p.product, p.quantity) for p in tracker.positions() if p.quantity] == [("CNC", 5)]


@pytest.mark.parametrize("held,side,qty,product,refused", [
    (0, "SELL", 5, "CNC", RiskCode.DELIVERY_SHORT),  # a delivery short: Kite refuses it, and its GTT
    (3, "SELL", 5, "CNC", RiskCode.DELIVERY_SHORT),  # sells 2 shares it does not hold
    (5, "SELL", 5, "CNC", None),  # sells what it holds
    (0, "SELL", 5, "MIS", None),  # intraday short
    (0, "BUY", 5, "CNC", None),
])
def test_a_delivery_entry_never_sells_shares_not_held(risk, held, side, qty, product, refused):
    tracker = PositionTracker()
    if held:
        tracker.on_fill(strategy_id="s1", exchange="NSE", tradingsymbol="INFY", transaction_type="BUY",
                        quantity=held, price=LTP, instrument_token=408065, product=product)
    s = signal("delivery", side=side, qty=qty, intent="entry", product=Product(product))
    decision = risk.validate_signal(s, context_from(tracker, OrderBook(), s, prices={"NSE:INFY": LTP}))
    assert (decision.ok, decision.code or None) == (refused is None, refused), decision.reason


def test_the_traders_own_delivery_sell_may_sell_demat_holdings(risk):
    """A manual order from the desk is not a strategy's position: Kite checks the demat holdings (eDIS)."""
    s = signal("manual-sell", side="SELL", qty=5, intent="entry", product=Product.CNC)
    s = type(s)(**{**{f: getattr(s, f) for f in s.__struct_fields__}, "metadata": {"source": "manual"}})
    assert risk.validate_signal(s, context_from(PositionTracker(), OrderBook(), s, prices={"NSE:INFY": LTP})).ok


def test_a_restart_after_a_reset_in_profit_judges_no_loss_before_the_days_pnl_is_heard(tmp_path, clock):
    """The reset measured the day's loss from +₹15,000; a restarted worker knows its baseline before any P&L:
    its first signal must not read that as a ₹15,000 loss and halt (flatten_on_halt would square everything off)."""
    first = RiskManager(USER, LIMITS, journal(tmp_path, clock), clock)
    first.on_pnl(15_000_00, 0, "positions")
    first.reset("re-armed in profit")
    first.store.close()
    again = RiskManager(USER, None, journal(tmp_path, clock), clock)
    decision = again.validate_signal(signal(), books(infy()))
    assert decision.ok and again.state is KillSwitchState.ACTIVE, decision
    assert again.on_pnl(15_000_00 - 7_000_00, 0, "positions") is None  # ₹7,000 lost since the reset: below the limit
    assert again.on_pnl(15_000_00 - 10_000_00, 0, "positions").state is KillSwitchState.HALTED
