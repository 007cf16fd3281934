"""The add-strategy form, generated from a strategy's params schema (the strategy worker's catalog:
``{"name", "params": [{"name", "type": int|float|bool|choice|str, "default", "min", "max",
"choices", "description"}]}``) and read back into typed params.

Parsing checks what the form itself can know (a number is a number, within its bounds, a choice is
one of the choices); cross-field rules stay with the strategy worker, which names the field it refuses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def spec_of(catalog: list[dict], name: str) -> dict | None:
    return next((s for s in catalog if s["name"] == name), None)


def _number(p: dict, raw: str) -> tuple[Any, str]:
    kind = p["type"]
    try:
        value: int | float = int(raw) if kind == "int" else float(raw)
    except ValueError:
        return None, f"{p['name']}: {'a whole number' if kind == 'int' else 'a number'} is needed, not {raw!r}"
    lo, hi = p.get("min"), p.get("max")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        return None, f"{p['name']}: {raw} is out of range (allowed {lo} to {hi})"
    return value, ""


def parse_params(spec: dict, form: Mapping[str, Any]) -> tuple[dict, dict, dict[str, str]]:
    """(params for AddStrategy, the values as typed for re-rendering, every error by field name).

    The form starts filled with the defaults, so an emptied field is a mistake to name, not a silent
    default (a field the request does not carry at all keeps the strategy's default); an unchecked box
    means False."""
    params: dict[str, Any] = {}
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for p in spec["params"]:
        name, kind = p["name"], p["type"]
        if kind == "bool":
            params[name] = values[name] = str(form.get(name, "")).lower() in ("true", "on", "1", "yes")
            continue
        if name not in form:
            continue
        raw = str(form.get(name, "")).strip()
        values[name] = raw
        if raw == "":
            default = "" if p.get("default") is None else f" (default {p['default']})"
            value, message = None, f"{name}: a value is needed{default}"
        elif kind in ("int", "float"):
            value, message = _number(p, raw)
        elif kind == "choice" and raw not in [str(c) for c in p.get("choices") or []]:
            value, message = None, f"{name}: choose one of {', '.join(map(str, p['choices']))}"
        else:
            value, message = raw, ""
        if message:
            errors[name] = message
        else:
            params[name] = value
    return params, values, errors


def symbols_of(text: str) -> list[str]:
    """The form's optional symbols field: comma-separated, blanks dropped (empty: the strategy follows the live symbols of every Start)."""
    return [part.strip() for part in text.split(",") if part.strip()]
