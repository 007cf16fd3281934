"""Strategy names → classes, the params catalog the dashboard renders forms from, and params
validation that names the bad field and its allowed range."""

from __future__ import annotations

import functools
import typing
from typing import Any

import msgspec

from shared import validation
from strategy_worker.strategies import BUILT_IN
from strategy_worker.strategies.base import BaseStrategy
from strategy_worker.strategies.params import SHARED_FIELDS

_REGISTRY: dict[str, type[BaseStrategy]] = {cls.name: cls for cls in BUILT_IN}


class ParamsError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def register(cls: type[BaseStrategy]) -> type[BaseStrategy]:
    """Add a strategy that is not in ``BUILT_IN`` (a test's, a plugin's)."""
    _REGISTRY[cls.name] = cls
    return cls


def unregister(name: str) -> None:
    if name not in {cls.name for cls in BUILT_IN}:
        _REGISTRY.pop(name, None)


def get(name: str) -> type[BaseStrategy]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ParamsError("strategy", f"unknown strategy {name!r}; choose one of {sorted(_REGISTRY)}") from None


def names() -> list[str]:
    return sorted(_REGISTRY)


@functools.cache  # a Params class never changes; resolving its hints cost ~90% of a dashboard's catalog read
def _field_specs(params_cls: type[msgspec.Struct]) -> tuple[dict[str, Any], ...]:
    hints = typing.get_type_hints(params_cls, include_extras=True)
    out = []
    own_first = sorted(msgspec.structs.fields(params_cls), key=lambda f: f.name in SHARED_FIELDS)
    for f in own_first:
        hint = hints[f.name]
        base, meta = hint, None
        if typing.get_origin(hint) is typing.Annotated:
            base, *extras = typing.get_args(hint)
            meta = next((e for e in extras if isinstance(e, msgspec.Meta)), None)
        choices = list(typing.get_args(base)) if typing.get_origin(base) is typing.Literal else None
        kind = "choice" if choices else {int: "int", float: "float", bool: "bool", str: "str"}.get(base, "str")
        out.append({
            "name": f.name, "type": kind,
            "default": f.default if f.default is not msgspec.NODEFAULT else None,
            "min": getattr(meta, "ge", None) if meta else None, "max": getattr(meta, "le", None) if meta else None,
            "description": (getattr(meta, "description", None) or "") if meta else "", "choices": choices,
        })
    return tuple(out)


def _fields(params_cls: type[msgspec.Struct]) -> list[dict[str, Any]]:
    return [dict(f) for f in _field_specs(params_cls)]


def catalog() -> list[dict[str, Any]]:
    return [{"name": c.name, "description": c.description, "kind": c.kind, "params": _fields(c.Params)}
            for c in sorted(_REGISTRY.values(), key=lambda c: (c.kind, c.name))]


def validate_params(name: str, params: dict[str, Any]) -> msgspec.Struct:
    cls = get(name)
    fields = {f["name"]: f for f in _fields(cls.Params)}
    for key in params:
        if key not in fields:
            raise ParamsError(key, f"unknown parameter {key!r} for {name}; known: {sorted(fields)}")
    try:
        return msgspec.convert(params, cls.Params, strict=False)
    except msgspec.ValidationError as e:
        text = str(e)
        field = validation.path(e)
        if not field and validation.named(e):  # a rule from __post_init__ names its field; the bounds are not what it is about
            named = validation.named(e)
            field = named if named in fields else ""
            raise ParamsError(field or "params", f"{field or 'params'}: {text.replace('`', '')}") from None
        info = fields.get(field, {})
        bounds = ""
        if info.get("min") is not None or info.get("max") is not None:
            bounds = f" (allowed {info.get('min')} to {info.get('max')})"
        elif info.get("choices"):
            bounds = f" (one of {info['choices']})"
        raise ParamsError(field or "params", f"{field or 'params'}: {validation.reason(e)}{bounds}") from None

