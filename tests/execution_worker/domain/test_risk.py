"""Pre-trade risk judged from the books: the exit table on flat, long and short books (clamped, refused
NO_POSITION, never grown or flipped), only true reductions in REDUCING and HALTED, MARKET orders and
groups valued at the last price, greeks and prices that fail closed, stops and targets that make sense,
and the kill switch's grades, latch and restart."""

import pytest

from shared.messages import Exchange, KillSwitchState, OrderType, Position, Product, RiskLimits
from shared.trading.book import OrderBook
from shared.trading.order import BrokerUpdate, Order, OrderState, Placed, Submitted, parse_status
from shared.trading.planning import flatten_plan, order_request
from shared.trading.positions import PositionTracker
from shared.trading.risk import RiskCode, RiskContext, RiskManager, context_from
from shared.trading.risk_context import Holding

from .kit import USER, Clock, group, journal, leg, signal

LIMITS = RiskLimits(max_daily_loss=10_000_00, warn_daily_loss_pct=80.0, max_position_qty=100, max_position_lots=4,
                    max_exposure=1_000_000_00, max_orders_per_minute=5, max_open_orders=3,
                    max_exposure_per_symbol=300_000_00, max_exposure_per_strategy=500_000_00,
                    max_net_delta=500.0, max_net_vega=1_000.0)
LTP = 1500_00


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def risk(tmp_path, clock):
    return RiskManager(USER, LIMITS, journal(tmp_path, clock), clock)


def books(*holdings: Holding, **kw) -> RiskContext:
    return RiskContext(holdings={h.key: h for h in holdings}, **kw)


def infy(held=0, pending=0, account=None, account_pending=None, last=LTP, **kw) -> Holding:
    account = held if account is None else account  # the strategies' together, all on one side
    return Holding(key="NSE:INFY", held=held, pending=pending, account_long=max(account, 0),
                   account_short=max(-account, 0), account_pending=pending if account_pending is None else account_pending,
                   last_price=last, **kw)


def condor(qty=50, intent="entry", price=0):
    legs = [leg("NIFTY26N24000PE", "BUY", "PE", 24000_00, qty), leg("NIFTY26N24500PE", "SELL", "PE", 24500_00, qty),
            leg("NIFTY26N25500CE", "SELL", "CE", 25500_00, qty), leg("NIFTY26N26000CE", "BUY", "CE", 26000_00, qty)]
    if intent == "exit":
        legs = [leg(x.tradingsymbol, x.transaction_type.opposite, x.option_type, x.strike, qty) for x in legs]
    return group("iron_condor", [leg(x.tradingsymbol, x.transaction_type, x.option_type, x.strike, x.quantity,
                                     price=price, order_type=OrderType.LIMIT if price else OrderType.MARKET)
                                 for x in legs], intent=intent)


CONDOR = ("NIFTY26N24000PE", "NIFTY26N24500PE", "NIFTY26N25500CE", "NIFTY26N26000CE")


def condor_books(held: dict[str, int], last=100_00) -> RiskContext:
    held = {**dict.fromkeys(CONDOR, 0), **held}
    return books(*(Holding(key=f"NFO:{s}", held=q, account_long=max(q, 0), account_short=max(-q, 0), last_price=last,
                           lot_size=50) for s, q in held.items()))


# ---- the exit table: flat, long and short books ------------------------------------------------

EXITS = [  # (side, quantity, the strategy's book, ok, quantity placed or refusal code)
    ("SELL", 10, infy(0), False, RiskCode.NO_POSITION),  # an exit on a flat book opens nothing
    ("BUY", 10, infy(0), False, RiskCode.NO_POSITION),
    ("SELL", 10, infy(10), True, 10),
    ("SELL", 150, infy(10), True, 10),  # larger exits are clamped to the position
    ("BUY", 5, infy(10), False, RiskCode.NO_POSITION),  # the wrong side would grow a long
    ("BUY", 10, infy(-10), True, 10),
    ("BUY", 25, infy(-10), True, 10),
    ("SELL", 10, infy(-10), False, RiskCode.NO_POSITION),  # ... or deepen a short
    ("SELL", 10, infy(10, pending=-10), False, RiskCode.NO_POSITION),  # its working exit already closes it all
    ("SELL", 10, infy(10, pending=-4), True, 6),
    ("SELL", 10, infy(0, account=50), False, RiskCode.NO_POSITION),  # another strategy's position is not its own
]


@pytest.mark.parametrize("side,qty,holding,ok,expect", EXITS, ids=[f"{s}{q}-held{h.held}-pending{h.pending}"
                                                                      for s, q, h, _, _ in EXITS])
def test_the_exit_table(risk, side, qty, holding, ok, expect):
    decision = risk.validate_signal(signal(f"x-{side}{qty}", side=side, qty=qty, intent="exit"), books(holding))
    assert decision.ok is ok
    if ok:
        assert decision.quantities == (expect,)
        assert ("clamped" in decision.reason) == (expect < qty)
    else:
        assert decision.code == expect and decision.reason


@pytest.mark.parametrize("state_pnl", [-8_500_00, -10_000_00], ids=["REDUCING", "HALTED"])
def test_reducing_and_halted_allow_only_true_reductions(risk, state_pnl):
    risk.on_pnl(state_pnl, 0, "positions")
    held = books(infy(10))
    assert risk.validate_signal(signal("x1", side="SELL", qty=10, intent="exit"), held).ok
    assert risk.validate_signal(signal("x2", side="SELL", qty=4), held).ok  # an "entry" that only reduces
    growing = {"e1": signal("e1", qty=1), "e2": signal("e2", side="SELL", qty=15),  # grows / flips the sign
               "e3": signal("e3", side="SELL", qty=5)}
    blocked = RiskCode.KILL_SWITCH_HALTED if risk.halted else RiskCode.REDUCING_ONLY_EXITS
    assert risk.validate_signal(growing["e1"], held).code == blocked
    assert risk.validate_signal(growing["e2"], held).code == blocked
    assert risk.validate_signal(growing["e3"], books(infy(0))).code == blocked
    assert risk.validate_signal(signal("x3", side="SELL", qty=10, intent="exit"), books(infy(0))).code == \
        RiskCode.NO_POSITION


def test_an_exit_group_is_clamped_leg_by_leg_and_needs_something_to_close(risk):
    out = condor(qty=100, intent="exit")
    held = {"NIFTY26N24000PE": 50, "NIFTY26N24500PE": -50, "NIFTY26N25500CE": 0, "NIFTY26N26000CE": 0}
    decision = risk.validate_signal(out, condor_books(held))
    assert decision.ok and decision.quantities == (50, 50, 0, 0)
    assert risk.validate_signal(out, condor_books({})).code == RiskCode.NO_POSITION  # nothing held at all


# ---- entries -----------------------------------------------------------------------------------

REFUSALS = [
    (RiskCode.POSITION_SIZE, signal(qty=101), books(infy())),
    (RiskCode.POSITION_SIZE, signal(qty=60), books(infy(50))),
    (RiskCode.POSITION_SIZE, signal(qty=20), books(infy(0, account=60, account_pending=30))),  # others' orders
    (RiskCode.POSITION_SIZE, signal(qty=20), books(infy(50, pending=40))),  # its own working entries count
    (RiskCode.POSITION_SIZE, signal(qty=250, exchange="NFO", symbol="NIFTYFUT"),
     books(Holding(key="NFO:NIFTYFUT", lot_size=50, last_price=100_00))),
    (RiskCode.POSITION_SIZE, group("bull_call_spread", [leg("NIFTY26N25000CE", "BUY", "CE", 25000_00, 250),
                                                       leg("NIFTY26N25500CE", "SELL", "CE", 25500_00, 250)]),
     condor_books({"NIFTY26N25000CE": 0, "NIFTY26N25500CE": 0})),
    (RiskCode.EXPOSURE_LIMIT, signal(qty=10), books(infy(), exposure=999_000_00)),
    (RiskCode.SYMBOL_EXPOSURE, signal(qty=10), books(infy(), exposure_by_symbol={"INFY": 299_000_00})),
    (RiskCode.STRATEGY_EXPOSURE, signal(qty=10), books(infy(), exposure_by_strategy={"s1": 499_000_00})),
    (RiskCode.PRICE_UNKNOWN, signal(qty=10), books(infy(last=0))),  # a MARKET order nobody can value
    (RiskCode.MAX_OPEN_ORDERS, signal(), books(infy(), open_orders=3)),
    (RiskCode.MAX_OPEN_ORDERS, condor(), condor_books({})),
    (RiskCode.NET_DELTA_LIMIT, signal(), books(infy(), underlying="NIFTY", net_delta={"NIFTY": 450.0},
                                               signal_delta=60.0)),
    (RiskCode.NET_VEGA_LIMIT, signal(), books(infy(), underlying="NIFTY", net_vega={"NIFTY": -900.0},
                                              signal_vega=-200.0)),
    (RiskCode.GREEKS_UNPRICED, signal(), books(infy(), underlying="NIFTY", greeks_priced=False)),
    (RiskCode.INVALID_STOP, signal(stop_loss=151000, target=156000), books(infy())),  # a BUY's stop above LTP
    (RiskCode.INVALID_STOP, signal(stop_loss=-94885, target=156000), books(infy())),  # a negative stop
    (RiskCode.INVALID_STOP, signal(side="SELL", stop_loss=149000), books(infy())),
    (RiskCode.INVALID_TARGET, signal(stop_loss=147000, target=149000), books(infy())),
    (RiskCode.INVALID_STOP, signal(stop_loss=130000, target=156000), books(infy(lower=135000, upper=165000))),
    (RiskCode.INVALID_TARGET, signal(stop_loss=147000, target=170000), books(infy(lower=135000, upper=165000))),
    # an SL / SL-M entry's own trigger, as Kite's RMS judges it
    (RiskCode.INVALID_TRIGGER, signal(order_type=OrderType.SL_M, price=0), books(infy())),  # no trigger
    (RiskCode.INVALID_TRIGGER, signal(order_type=OrderType.SL_M, price=0, trigger_price=LTP), books(infy())),
    (RiskCode.INVALID_TRIGGER, signal(side="SELL", order_type=OrderType.SL_M, price=0, trigger_price=151000),
     books(infy())),
    (RiskCode.INVALID_TRIGGER, signal(order_type=OrderType.SL, price=151000, trigger_price=151500), books(infy())),
    (RiskCode.INVALID_TRIGGER, signal(side="SELL", order_type=OrderType.SL, price=149000, trigger_price=148500),
     books(infy())),
    (RiskCode.INVALID_TRIGGER, signal(order_type=OrderType.SL_M, price=0, trigger_price=170000),
     books(infy(lower=135000, upper=165000))),
    (RiskCode.PRICE_UNKNOWN, signal(order_type=OrderType.SL_M, price=0, trigger_price=151000), books(infy(last=0))),
    # an SL-M buy's stop is judged against its trigger (where it fills), not the last price
    (RiskCode.INVALID_STOP, signal(order_type=OrderType.SL_M, price=0, trigger_price=152000, stop_loss=152500),
     books(infy())),
]


@pytest.mark.parametrize("code,sig,ctx", REFUSALS, ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(REFUSALS)])
def test_every_limit_refuses_with_its_code(risk, code, sig, ctx):
    decision = risk.validate_signal(sig, ctx)
    assert (decision.ok, decision.code) == (False, code) and decision.reason
    assert risk.store.risk_events(USER)[-1]["code"] == code


def test_market_legs_of_a_group_are_valued_at_the_last_price(risk):
    # 4 legs × 50 × ₹100 = ₹20,000 notional: over a ₹15,000 per-symbol cap only when the LTP is used
    risk.set_limits(RiskLimits(**{**{f: getattr(LIMITS, f) for f in LIMITS.__struct_fields__},
                                  "max_exposure_per_symbol": 15_000_00, "max_open_orders": 10}))
    decision = risk.validate_signal(condor(), condor_books({}))
    assert decision.code == RiskCode.SYMBOL_EXPOSURE and "₹20,000" in decision.reason
    unpriced = condor_books({}, last=0)
    assert risk.validate_signal(condor(), unpriced).code == RiskCode.PRICE_UNKNOWN


def test_within_limits_is_accepted_and_greeks_may_shrink(risk):
    assert risk.validate_signal(signal(qty=100, stop_loss=147000, target=156000), books(infy())).ok
    reducing_delta = books(infy(), underlying="NIFTY", net_delta={"NIFTY": 900.0}, signal_delta=-100.0)
    assert risk.validate_signal(signal("s2"), reducing_delta).ok


def test_order_rate_counts_accepted_orders_per_minute(risk, clock):
    for i in range(5):
        assert risk.validate_signal(signal(f"r{i}"), books(infy())).ok
    refused = risk.validate_signal(signal("r5"), books(infy()))
    assert refused.code == RiskCode.ORDER_RATE
    clock.t += 61
    assert risk.validate_signal(signal("r6"), books(infy())).ok


# ---- the kill switch ---------------------------------------------------------------------------

def test_trips_at_the_limit_graded_and_calls_halt_listeners(risk):
    halted = []
    risk.on_halt(halted.append)
    assert risk.on_pnl(-5_000_00, -2_999_99, "positions") is None  # loss 7,999.99 < 80 %
    state = risk.on_pnl(-5_000_00, -3_000_00, "tick", exposure=250_000_00)
    summary = risk.summary(position_count=1, trade_count=4)
    assert (summary.state, summary.daily_pnl, summary.utilization_pct, summary.loss_utilization_pct) == (
        "REDUCING", -8_000_00, 25.0, 80.0)
    assert state.state is KillSwitchState.REDUCING and risk.state is KillSwitchState.REDUCING
    assert risk.validate_signal(signal("e1"), books(infy())).code == RiskCode.REDUCING_ONLY_EXITS
    assert risk.on_pnl(-6_000_00, -3_999_99, "fill") is None
    assert halted == []
    state = risk.on_pnl(-6_000_00, -4_000_00, "fill")
    assert state.state is KillSwitchState.HALTED and state.day_pnl == -10_000_00
    assert [s.state for s in halted] == [KillSwitchState.HALTED]
    assert risk.validate_signal(signal("h1"), books(infy())).code == RiskCode.KILL_SWITCH_HALTED
    assert risk.halted
    assert risk.on_pnl(0, 0, "positions") is None and risk.state is KillSwitchState.HALTED  # latched
    codes = [e["code"] for e in risk.store.risk_events(USER)]
    assert "DAILY_LOSS_WARNING" in codes and "DAILY_LOSS_LIMIT" in codes


def test_halted_survives_restart_and_resets_only_on_command(tmp_path, clock):
    first = RiskManager(USER, LIMITS, journal(tmp_path, clock), clock)
    first.on_pnl(-10_000_00, 0, "positions")
    first.store.close()
    again = RiskManager(USER, None, journal(tmp_path, clock), clock)
    assert again.state is KillSwitchState.HALTED and again.limits == LIMITS
    assert again.new_day("2026-11-25") is None and again.state is KillSwitchState.HALTED
    assert again.validate_signal(signal(), books(infy())).code == RiskCode.KILL_SWITCH_HALTED
    again.on_pnl(-10_000_00, 0, "positions")
    state = again.reset("checked positions")
    assert state.state is KillSwitchState.ACTIVE
    assert again.validate_signal(signal("after"), books(infy())).ok
    assert again.on_pnl(-10_000_00 - 7_999_99, 0, "tick") is None  # loss counted from the reset level
    assert again.on_pnl(-20_000_00, 0, "tick").state is KillSwitchState.HALTED


def test_lowered_limit_refuses_with_daily_loss_code_and_is_audited(risk):
    risk.on_pnl(-3_000_00, 0, "positions")
    risk.set_limits(RiskLimits(max_daily_loss=2_000_00), by="test")
    assert risk.validate_signal(signal(), books(infy())).code == RiskCode.DAILY_LOSS_LIMIT
    assert risk.state is KillSwitchState.HALTED
    change = next(e for e in risk.store.risk_events(USER) if e["code"] == "RISK_LIMITS_CHANGED")
    assert "max_daily_loss 1000000 → 200000" in change["message"] and "(by test)" in change["message"]


def test_the_configured_defaults_apply_until_the_user_sets_limits(tmp_path, clock):
    store = journal(tmp_path, clock)
    configured = RiskLimits(max_daily_loss=30_00)
    assert RiskManager(USER, None, store, clock, defaults=configured).limits == configured
    RiskManager(USER, None, store, clock, defaults=configured).set_limits(LIMITS)
    assert RiskManager(USER, None, store, clock, defaults=configured).limits == LIMITS  # the user's own win


def test_reducing_ends_on_a_new_day(risk):
    risk.on_pnl(-8_500_00, 0, "positions")
    assert risk.state is KillSwitchState.REDUCING
    assert risk.new_day("2026-11-25").state is KillSwitchState.ACTIVE


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


def test_context_from_the_position_book_and_the_order_book(risk):
    tracker = PositionTracker()
    tracker.on_fill(strategy_id="s1", exchange="NSE", tradingsymbol="INFY", transaction_type="BUY", quantity=90,
                    price=1500_00, instrument_token=408065)
    tracker.on_fill(strategy_id="s9", exchange="NSE", tradingsymbol="INFY", transaction_type="SELL", quantity=30,
                    price=1500_00, instrument_token=408065)
    book = OrderBook()
    working = Order.from_request(order_request(USER, signal_id="x0", kind="exit", exchange="NSE", tradingsymbol="INFY",
                                               instrument_token=408065, side="SELL", quantity=40, product="MIS",
                                               order_type=OrderType.MARKET), strategy_id="s1")
    for event in (Submitted(), Placed(order_id="O1"), BrokerUpdate(order_id="O1", state=parse_status("OPEN"),
                                                                   filled_quantity=10)):
        working.apply(event)
    book.add(working)
    ctx = context_from(tracker, book, signal("x", side="SELL", qty=90, intent="exit"), prices={"NSE:INFY": 1510_00})
    h = ctx.holding("NSE", "INFY")
    assert (h.held, h.pending, h.account, h.account_pending, h.last_price, h.exitable) == (90, -30, 60, -30,
                                                                                           1510_00, 60)
    assert ctx.open_orders == 1 and working.state is OrderState.OPEN
    assert risk.validate_signal(signal("x", side="SELL", qty=90, intent="exit"), ctx).quantities == (60,)


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
