"""shared/validation.py: the field and the reason of a msgspec ValidationError, as every refusal names them."""

import msgspec
import pytest

from shared import validation


class Leg(msgspec.Struct):
    quantity: int


class Order(msgspec.Struct):
    email: str
    legs: list[Leg] = []

    def __post_init__(self) -> None:
        if self.email == "same":
            raise ValueError("`email` must differ from `legs`")


def error(data: object) -> msgspec.ValidationError:
    with pytest.raises(msgspec.ValidationError) as e:
        msgspec.convert(data, Order)
    return e.value


def test_a_nested_path_is_the_field() -> None:
    e = error({"email": "a@b", "legs": [{"quantity": "x"}]})
    assert validation.path(e) == "legs[0].quantity" == validation.field(e)
    assert validation.reason(e) == "Expected `int`, got `str`"


def test_a_top_level_error_names_its_field_in_backticks() -> None:
    e = error({})
    assert validation.path(e) == "" and validation.named(e) == "email" == validation.field(e, "body")
    e = error({"email": "same"})
    assert validation.field(e) == "email" and validation.reason(e) == "`email` must differ from `legs`"


def test_nothing_named_falls_back_to_the_default() -> None:
    assert validation.field(ValueError("plain"), "body") == "body"
