"""The kill switch judged from the day's P&L: its grades (warn, REDUCING, HALTED) and halt listeners, the latch
that survives a restart and resets only on command, a lowered limit, the configured defaults, a new day."""

from shared.messages import KillSwitchState, RiskLimits
from shared.trading.risk import RiskCode, RiskManager

from .kit import USER, journal, signal
from .risk_kit import LIMITS, books, infy


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
    assert state.state is KillSwitchState.ACTIVE and (state.day_pnl, state.loss) == (-10_000_00, 0)
    assert again.summary(position_count=0, trade_count=0).loss_utilization_pct == 0.0  # not the day's 100 %
    assert again.validate_signal(signal("after"), books(infy())).ok
    assert again.on_pnl(-10_000_00 - 7_999_99, 0, "tick") is None  # loss counted from the reset level
    warned = again.on_pnl(-18_000_00, 0, "tick")
    assert warned.state is KillSwitchState.REDUCING and warned.loss == 8_000_00
    assert warned.reason.startswith("loss since the reset ₹8,000.00 (day P&L -₹18,000.00) passed 80%"), warned.reason
    summary = again.summary(position_count=0, trade_count=0)
    assert (summary.loss, summary.loss_utilization_pct, summary.loss_remaining) == (8_000_00, 80.0, 2_000_00)
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
