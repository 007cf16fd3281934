"""The add-strategy form read back into params: types, bounds, choices, checkboxes, defaults."""

from __future__ import annotations

from gateway.strategy_form import parse_params, spec_of

SPEC = {"name": "demo", "params": [
    {"name": "fast", "type": "int", "default": 50, "min": 2, "max": 200, "choices": None},
    {"name": "atr_stop", "type": "float", "default": 2.0, "min": 0.1, "max": 10, "choices": None},
    {"name": "reverse", "type": "bool", "default": True, "min": None, "max": None, "choices": None},
    {"name": "side", "type": "choice", "default": "long", "min": None, "max": None, "choices": ["long", "short"]},
]}


def test_typed_params_and_unchecked_boxes():
    params, values, error = parse_params(SPEC, {"fast": "3", "atr_stop": "1.5", "side": "short"})
    assert error is None
    assert params == {"fast": 3, "atr_stop": 1.5, "reverse": False, "side": "short"}
    assert values["fast"] == "3"


def test_empty_numbers_take_the_default():
    params, _, error = parse_params(SPEC, {"fast": "", "reverse": "true"})
    assert error is None and params == {"reverse": True}


def test_errors_name_the_field_and_the_range():
    _, values, error = parse_params(SPEC, {"fast": "1", "atr_stop": "x"})
    assert error == {"field": "fast", "message": "fast: 1 is out of range (allowed 2 to 200)"}
    assert values["atr_stop"] == "x"  # kept for the re-rendered form
    _, _, error = parse_params(SPEC, {"fast": "2.5"})
    assert error["field"] == "fast" and "whole number" in error["message"]
    _, _, error = parse_params(SPEC, {"side": "up"})
    assert error == {"field": "side", "message": "side: choose one of long, short"}


def test_spec_lookup():
    assert spec_of([SPEC], "demo") is SPEC and spec_of([SPEC], "nope") is None
