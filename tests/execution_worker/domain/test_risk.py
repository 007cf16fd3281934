import pytest

from shared.trading.positions import PositionTracker
from shared.trading.planning import flatten_plan
from shared.trading.risk import KillSwitchError, context_from, RiskCode, RiskContext, RiskLimitError, RiskManager
from shared.messages import Exchange, KillSwitchState, Position, Product, RiskLimits

from .kit import USER, Clock, group, journal, leg, signal

LIMITS = RiskLimits(max_daily_loss=10_000_00, warn_daily_loss_pct=80.0, max_position_qty=100, max_position_lots=4,
                    max_exposure=1_000_000_00, max_orders_per_minute=5, max_open_orders=3,
                    max_exposure_per_symbol=300_000_00, max_exposure_per_strategy=500_000_00,
                    max_net_delta=500.0, max_net_vega=1_000.0)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def risk(tmp_path, clock):
    return RiskManager(USER, LIMITS, journal(tmp_path, clock), clock)


def condor(qty=50):
    return group("iron_condor", [leg("NIFTY26N24000PE", "BUY", "PE", 24000_00, qty), leg("NIFTY26N24500PE", "SELL", "PE", 24500_00, qty),
                                 leg("NIFTY26N25500CE", "SELL", "CE", 25500_00, qty), leg("NIFTY26N26000CE", "BUY", "CE", 26000_00, qty)])


REFUSALS = [
    (RiskCode.POSITION_SIZE, signal(qty=101), RiskContext()),
    (RiskCode.POSITION_SIZE, signal(qty=60), RiskContext(position_qty=50)),
    (RiskCode.POSITION_SIZE, signal(qty=250, exchange="NFO"), RiskContext(lot_size=50)),
    (RiskCode.POSITION_SIZE, group("bull_call_spread", [leg("NIFTY26N25000CE", "BUY", "CE", 25000_00, 250),
                                                       leg("NIFTY26N25500CE", "SELL", "CE", 25500_00, 250)]), RiskContext()),
    (RiskCode.EXPOSURE_LIMIT, signal(qty=10), RiskContext(exposure=999_000_00, notional=2_000_00)),
    (RiskCode.SYMBOL_EXPOSURE, signal(qty=10), RiskContext(exposure_by_symbol={"INFY": 299_000_00}, notional=2_000_00)),
    (RiskCode.STRATEGY_EXPOSURE, signal(qty=10), RiskContext(exposure_by_strategy={"s1": 499_000_00}, notional=2_000_00)),
    (RiskCode.MAX_OPEN_ORDERS, signal(), RiskContext(open_orders=3)),
    (RiskCode.MAX_OPEN_ORDERS, condor(), RiskContext(open_orders=0)),
    (RiskCode.NET_DELTA_LIMIT, signal(), RiskContext(underlying="NIFTY", net_delta={"NIFTY": 450.0}, signal_delta=60.0)),
    (RiskCode.NET_VEGA_LIMIT, signal(), RiskContext(underlying="NIFTY", net_vega={"NIFTY": -900.0}, signal_vega=-200.0)),
]


@pytest.mark.parametrize("code,sig,ctx", REFUSALS, ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(REFUSALS)])
def test_every_limit_refuses_with_its_code(risk, code, sig, ctx):
    decision = risk.validate_signal(sig, ctx)
    assert (decision.ok, decision.code) == (False, code) and decision.reason
    assert risk.store.risk_events(USER)[-1]["code"] == code


def test_require_raises_the_refusal(risk):
    with pytest.raises(RiskLimitError) as refused:
        risk.require(signal(qty=500))
    assert refused.value.code == RiskCode.POSITION_SIZE and not isinstance(refused.value, KillSwitchError)
    risk.require(signal("fine"))


def test_within_limits_is_accepted_and_greeks_may_shrink(risk):
    assert risk.validate_signal(signal(qty=100), RiskContext(notional=100 * 1500_00)).ok
    reducing_delta = RiskContext(underlying="NIFTY", net_delta={"NIFTY": 900.0}, signal_delta=-100.0)
    assert risk.validate_signal(signal("s2"), reducing_delta).ok


def test_order_rate_counts_accepted_orders_per_minute(risk, clock):
    for i in range(5):
        assert risk.validate_signal(signal(f"r{i}")).ok
    refused = risk.validate_signal(signal("r5"))
    assert refused.code == RiskCode.ORDER_RATE
    clock.t += 61
    assert risk.validate_signal(signal("r6")).ok


def test_trips_at_the_limit_graded_and_calls_halt_listeners(risk):
    halted = []
    risk.on_halt(halted.append)
    assert risk.on_pnl(-5_000_00, -2_999_99, "positions") is None  # loss 7,999.99 < 80 %
    state = risk.on_pnl(-5_000_00, -3_000_00, "tick", exposure=250_000_00)
    summary = risk.summary(position_count=1, trade_count=4)
    assert (summary.state, summary.daily_pnl, summary.utilization_pct, summary.loss_utilization_pct) == (
        "REDUCING", -8_000_00, 25.0, 80.0)
    assert state.state is KillSwitchState.REDUCING and risk.state is KillSwitchState.REDUCING
    refused = risk.validate_signal(signal("e1"), RiskContext())
    assert refused.code == RiskCode.REDUCING_ONLY_EXITS
    assert risk.validate_signal(signal("x1", side="SELL", qty=10), RiskContext(position_qty=10)).ok
    assert risk.validate_signal(signal("x2", intent="exit"), RiskContext()).ok
    assert risk.on_pnl(-6_000_00, -3_999_99, "fill") is None
    assert halted == []
    state = risk.on_pnl(-6_000_00, -4_000_00, "fill")
    assert state.state is KillSwitchState.HALTED and state.day_pnl == -10_000_00
    assert [s.state for s in halted] == [KillSwitchState.HALTED]
    for sig in (signal("h1"), signal("h2", intent="exit")):
        assert risk.validate_signal(sig).code == RiskCode.KILL_SWITCH_HALTED
    assert risk.halted
    with pytest.raises(KillSwitchError, match="KILL_SWITCH_HALTED"):
        risk.require(signal("h3"))
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
    assert again.validate_signal(signal()).code == RiskCode.KILL_SWITCH_HALTED
    again.on_pnl(-10_000_00, 0, "positions")
    state = again.reset("checked positions")
    assert state.state is KillSwitchState.ACTIVE
    assert again.validate_signal(signal("after")).ok
    assert again.on_pnl(-10_000_00 - 7_999_99, 0, "tick") is None  # loss counted from the reset level
    assert again.on_pnl(-20_000_00, 0, "tick").state is KillSwitchState.HALTED


def test_lowered_limit_refuses_with_daily_loss_code(risk):
    risk.on_pnl(-3_000_00, 0, "positions")
    risk.set_limits(RiskLimits(max_daily_loss=2_000_00))
    assert risk.validate_signal(signal()).code == RiskCode.DAILY_LOSS_LIMIT
    assert risk.state is KillSwitchState.HALTED


def test_reducing_ends_on_a_new_day(risk):
    risk.on_pnl(-8_500_00, 0, "positions")
    assert risk.state is KillSwitchState.REDUCING
    assert risk.new_day("2026-11-25").state is KillSwitchState.ACTIVE


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


def test_context_from_the_position_book(risk):
    book = PositionTracker()
    book.on_fill(strategy_id="s1", exchange="NSE", tradingsymbol="INFY", transaction_type="BUY", quantity=90,
                 price=1500_00, instrument_token=408065)
    exit_ctx = context_from(book, signal("x", side="SELL", qty=90), open_orders=0)
    assert (exit_ctx.position_qty, exit_ctx.exposure, exit_ctx.exposure_by_symbol) == (90, 90 * 1500_00, {"INFY": 135_000_00})
    assert risk.validate_signal(signal("x", side="SELL", qty=90), exit_ctx).ok
    more = signal("m", qty=20, price=0)
    ctx = context_from(book, more, open_orders=0, last_price=1500_00,
                       greeks={"NIFTY": (10.0, 5.0)}, signal_greeks=(1.0, 2.0), underlying="NIFTY")
    assert (ctx.notional, ctx.net_delta, ctx.signal_vega) == (20 * 1500_00, {"NIFTY": 10.0}, 2.0)
    assert risk.validate_signal(more, ctx).code == RiskCode.POSITION_SIZE  # 90 + 20 > 100
