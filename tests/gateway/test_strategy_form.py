"""The add-strategy form read back into params: types, bounds, choices, checkboxes, defaults."""

from __future__ import annotations

from gateway.strategy_form import parse_params, spec_of

SPEC = {"name": "demo", "params": [
    {"name": "fast", "type": "int", "default": 50, "min": 2, "max": 200, "choices": None},
    {"name": "atr_stop", "type": "float", "default": 2.0, "min": 0.1, "max": 10, "choices": None},
    {"name": "reverse", "type": "bool", "default": True, "min": None, "max": None, "choices": None},
    {"name": "side", "type": "choice", "default": "long", "min": None, "max": None, "choices": ["long", "short"]},
]}


FULL = {"fast": "3", "atr_stop": "1.5", "side": "short"}


def test_typed_params_and_unchecked_boxes():
    params, values, errors = parse_params(SPEC, FULL)
    assert errors == {}
    assert params == {"fast": 3, "atr_stop": 1.5, "reverse": False, "side": "short"}
    assert values["fast"] == "3"


def test_an_emptied_field_is_named_never_a_silent_default():
    params, values, errors = parse_params(SPEC, {**FULL, "fast": "", "reverse": "true"})
    assert errors == {"fast": "fast: a value is needed (default 50)"}
    assert "fast" not in params and values["fast"] == ""
    params, _, errors = parse_params(SPEC, {"side": "long"})  # not in the request at all: the defaults
    assert errors == {} and params == {"reverse": False, "side": "long"}


def test_every_bad_field_is_named_with_its_range():
    _, values, errors = parse_params(SPEC, {**FULL, "fast": "1", "atr_stop": "x", "side": "up"})
    assert errors == {"fast": "fast: 1 is out of range (allowed 2 to 200)",
                      "atr_stop": "atr_stop: a number is needed, not 'x'",
                      "side": "side: choose one of long, short"}
    assert values["atr_stop"] == "x"  # kept for the re-rendered form
    _, _, errors = parse_params(SPEC, {**FULL, "fast": "2.5"})
    assert "whole number" in errors["fast"]


def test_spec_lookup():
    assert spec_of([SPEC], "demo") is SPEC and spec_of([SPEC], "nope") is None
