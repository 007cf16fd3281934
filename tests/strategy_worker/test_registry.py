"""The registry: the catalog the dashboard renders forms from, params validation naming the field."""

import pytest

from strategy_worker.strategies import registry

EQUITY = {"ema_crossover", "vwap_breakout", "mean_reversion", "rsi"}


def test_catalog_lists_every_strategy_with_typed_bounded_params():
    catalog = {c["name"]: c for c in registry.catalog()}
    assert EQUITY <= set(catalog)
    assert {c["kind"] for c in catalog.values()} <= {"equity", "options"}
    ema = catalog["ema_crossover"]
    assert ema["kind"] == "equity" and ema["description"]
    fast = next(p for p in ema["params"] if p["name"] == "fast")
    assert fast == {"name": "fast", "type": "int", "default": 50, "min": 2, "max": 200,
                    "description": "Fast EMA period (bars)", "choices": None}
    slow = next(p for p in ema["params"] if p["name"] == "slow")
    assert slow["default"] == 200
    for c in catalog.values():
        for p in c["params"]:
            assert set(p) == {"name", "type", "default", "min", "max", "description", "choices"}
            assert p["description"], f"{c['name']}.{p['name']} has no description"


def test_defaults_validate_and_values_are_coerced():
    params = registry.validate_params("rsi", {"period": "21"})
    assert params.period == 21 and params.oversold == 30.0 and params.overbought == 70.0


@pytest.mark.parametrize("params, field, text", [
    ({"fast": 0}, "fast", "allowed 2 to 200"),
    ({"slow": 10_000}, "slow", "allowed 3 to 500"),
    ({"fast": "x"}, "fast", "Expected `int`"),
    ({"fast": 60, "slow": 50}, "fast", "fast must be shorter than slow (60 ≥ 50)"),
    ({"fats": 3}, "fats", "unknown parameter"),
])
def test_bad_params_name_the_field_and_the_allowed_range(params, field, text):
    with pytest.raises(registry.ParamsError) as e:
        registry.validate_params("ema_crossover", params)
    assert e.value.field == field and text in str(e.value)


@pytest.mark.parametrize("name, params, field", [
    ("ema_crossover", {"fast": 8, "slow": 8}, "fast"),
    ("bull_call_spread", {"fast": 21, "slow": 9}, "fast"),
    ("bear_put_spread", {"fast": 30, "slow": 20}, "fast"),
    ("mean_reversion", {"entry_z": 1.0, "exit_z": 1.5}, "exit_z"),
    ("iron_condor", {"entry_after_minute": 900, "exit_minute": 800}, "entry_after_minute"),
    ("straddle", {"entry_after_minute": 900, "exit_minute": 900}, "entry_after_minute"),
])
def test_cross_field_rules_name_the_field_without_a_misleading_range(name, params, field):
    with pytest.raises(registry.ParamsError) as e:
        registry.validate_params(name, params)
    assert e.value.field == field and "allowed" not in str(e.value) and "`" not in str(e.value)


def test_unknown_strategy_is_refused_naming_the_choices():
    with pytest.raises(registry.ParamsError) as e:
        registry.get("turtle")
    assert e.value.field == "strategy" and "ema_crossover" in str(e.value)
