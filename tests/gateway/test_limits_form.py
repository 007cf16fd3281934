"""The risk-limits form: rupees in, paise out, every bad field named, the whole-form rules."""

from __future__ import annotations

from gateway.limits_form import form_values, parse_limits
from shared.messages import RiskLimits


def test_the_defaults_round_trip_through_the_form():
    values = form_values(RiskLimits())
    assert values["max_daily_loss"] == "50000.00" and values["flatten_on_halt"] == ""
    limits, _, errors = parse_limits(values)
    assert errors == {} and limits == RiskLimits()


def test_rupees_become_exact_paise_and_the_box_a_bool():
    values = {**form_values(RiskLimits()), "max_daily_loss": "₹1,234.56", "flatten_on_halt": "on"}
    limits, _, errors = parse_limits(values)
    assert errors == {} and limits.max_daily_loss == 123456 and limits.flatten_on_halt is True


def test_every_bad_field_is_named():
    values = {**form_values(RiskLimits()), "max_daily_loss": "", "warn_daily_loss_pct": "120",
              "max_position_qty": "2.5", "max_exposure": "abc", "max_open_orders": "-1", "max_net_delta": "0",
              "max_orders_per_minute": "10.001"}
    limits, typed, errors = parse_limits(values)
    assert limits is None and typed["max_exposure"] == "abc"
    assert set(errors) == {"max_daily_loss", "warn_daily_loss_pct", "max_position_qty", "max_exposure",
                           "max_open_orders", "max_net_delta", "max_orders_per_minute"}
    assert "a value is needed" in errors["max_daily_loss"] and "at most 100" in errors["warn_daily_loss_pct"]
    _, _, errors = parse_limits({**form_values(RiskLimits()), "max_daily_loss": "10.005"})
    assert "two decimals" in errors["max_daily_loss"]


def test_a_per_symbol_cap_above_the_account_cap_is_refused():
    values = {**form_values(RiskLimits()), "max_exposure": "1000", "max_exposure_per_symbol": "2000",
              "max_exposure_per_strategy": "500"}
    _, _, errors = parse_limits(values)
    assert list(errors) == ["max_exposure_per_symbol"] and "limit nothing" in errors["max_exposure_per_symbol"]
