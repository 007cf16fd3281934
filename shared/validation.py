"""Reading a msgspec ``ValidationError``: which field it is about, and why — so every refusal (HTTP 400,
a bus ``Error``, a bad setting, a strategy's params) names the field the same way.

msgspec words its errors as ``<reason> - at `$.<path>` `` (``Expected `int`, got `str` - at `$.params.fast` ``)
or, for the top level, names the field in backticks (``Object missing required field `email` ``); a
``__post_init__`` rule that raises does the same (``` `fast` must be below `slow` ```)."""

from __future__ import annotations

_AT = " - at `$."


def path(e: Exception) -> str:
    """The path the error is at (``params.fast``, ``legs[0].quantity``); "" at the top level."""
    text = str(e)
    return text.split(_AT, 1)[1].split("`", 1)[0] if _AT in text else ""


def named(e: Exception) -> str:
    """The first name the message puts in backticks ("" when it names none)."""
    text = str(e)
    return text.split("`", 2)[1] if text.count("`") >= 2 else ""


def field(e: Exception, default: str = "") -> str:
    """The field to point at: the path, else the name the message gives, else ``default``."""
    return path(e) or named(e) or default


def reason(e: Exception) -> str:
    """The message without its ``- at `$...` `` suffix."""
    return str(e).split(" - at", 1)[0]
