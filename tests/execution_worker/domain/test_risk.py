"""Pre-trade risk judged from the books: the exit table on flat, long and short books (clamped, refused
NO_POSITION, never grown or flipped), only true reductions in REDUCING and HALTED, MARKET orders and
groups valued at the last price, greeks and prices that fail closed, stops and targets that make sense.
The kill switch: test_kill_switch.py; what the broker will hold (netting, products): test_risk_books.py."""

import pytest

from shared.messages import OrderType, RiskLimits
from shared.trading.risk import RiskCode
from shared.trading.risk_context import Holding

from .kit import USER, group, leg, signal
from .risk_kit import LIMITS, LTP, books, condor, condor_books, infy


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
    # a limit price outside the day's circuit band (known from the quote): the exchange would reject it, an exit's too
    (RiskCode.PRICE_OUTSIDE_BAND, signal(order_type=OrderType.LIMIT, price=170000), books(infy(lower=135000, upper=165000))),
    (RiskCode.PRICE_OUTSIDE_BAND, signal(side="SELL", order_type=OrderType.LIMIT, price=130000, intent="exit"),
     books(infy(held=10, lower=135000, upper=165000))),
    (RiskCode.PRICE_OUTSIDE_BAND, signal(side="SELL", order_type=OrderType.SL, price=134000, trigger_price=136000),
     books(infy(lower=135000, upper=165000))),
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


def test_a_limit_price_is_judged_against_the_circuit_band_only_when_the_band_is_known(risk):
    """Inside the band, or with no band read (0, 0): left to the broker, never guessed."""
    outside = signal(order_type=OrderType.LIMIT, price=170000)
    refused = risk.validate_signal(outside, books(infy(lower=135000, upper=165000)))
    assert refused.code == RiskCode.PRICE_OUTSIDE_BAND and "₹1,700" in refused.reason and "₹1,350" in refused.reason \
        and "₹1,650" in refused.reason, refused
    assert risk.validate_signal(outside, books(infy())).ok
    assert risk.validate_signal(signal("s2", order_type=OrderType.LIMIT, price=165000),
                                books(infy(lower=135000, upper=165000))).ok
    assert risk.validate_signal(signal("s3", order_type=OrderType.MARKET, price=0),
                                books(infy(lower=135000, upper=165000))).ok
