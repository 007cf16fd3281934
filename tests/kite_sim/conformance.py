"""Structural comparison of a kite_sim response with Kite's official mock response: the same keys and the
same JSON types, recursively. Lists are compared element by element against what every mock element
has in common (keys in only some mock elements are optional); lists of lists (candles) position by
position; a mock ``null`` says nothing about the type, so anything is accepted there."""

from __future__ import annotations

from typing import Any


def kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"  # JSON has one number type; Kite writes 0 for float fields
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    raise TypeError(type(v))


def merge(samples: list) -> Any:
    """One schema sample from a list's elements: keys every element has are required, others optional."""
    objects = [s for s in samples if isinstance(s, dict)]
    if objects and len(objects) == len(samples):
        keys = set().union(*objects)
        required = set.intersection(*(set(o) for o in objects))
        merged = {}
        for k in keys:
            values = [o[k] for o in objects if k in o]
            non_null = [v for v in values if v is not None]
            merged[k] = merge(non_null) if non_null and all(isinstance(v, dict) for v in non_null) else (
                non_null[0] if non_null else None)
        return _Optional(merged, keys - required)
    return next((s for s in samples if s is not None), None)


class _Optional(dict):
    def __init__(self, data: dict, optional: set) -> None:
        super().__init__(data)
        self.optional = optional


def compare(mock: Any, ours: Any, path: str = "$", nullable: frozenset[str] = frozenset(),
            omitted: frozenset[str] = frozenset(), extra: frozenset[str] = frozenset()) -> list[str]:
    """Differences between ``ours`` and ``mock``. ``nullable``: keys we may answer null where the mock has a
    value; ``omitted``: mock keys we leave out on purpose; ``extra``: keys we add on purpose (each with a
    reason at the call site)."""
    out: list[str] = []
    _compare(mock, ours, path, out, nullable, omitted, extra)
    return out


def _compare(mock, ours, path, out, nullable, omitted, extra) -> None:
    if mock is None:
        return
    key = path.rsplit(".", 1)[-1].split("[", 1)[0]
    if ours is None:
        if key not in nullable:
            out.append(f"{path}: null where Kite has {kind(mock)}")
        return
    if kind(mock) != kind(ours):
        out.append(f"{path}: {kind(ours)} where Kite has {kind(mock)}")
        return
    if isinstance(mock, dict):
        optional = getattr(mock, "optional", set())
        for k in mock:
            if k not in ours and k not in optional and k not in omitted:
                out.append(f"{path}.{k}: missing")
        for k in ours:
            if k not in mock and k not in extra:
                out.append(f"{path}.{k}: not in Kite's response")
        for k in mock:
            if k in ours:
                _compare(mock[k], ours[k], f"{path}.{k}", out, nullable, omitted, extra)
    elif isinstance(mock, list):
        if not mock:
            return
        if all(isinstance(m, list) for m in mock):  # rows such as candles: positional
            for i, row in enumerate(ours):
                if len(row) != len(mock[0]):
                    out.append(f"{path}[{i}]: {len(row)} fields where Kite has {len(mock[0])}")
                    continue
                for j, (m, o) in enumerate(zip(mock[0], row)):
                    _compare(m, o, f"{path}[{i}][{j}]", out, nullable, omitted, extra)
            return
        schema = merge(mock)
        for i, item in enumerate(ours):
            _compare(schema, item, f"{path}[{i}]", out, nullable, omitted, extra)


def compare_map(mock: dict, ours: dict, path: str = "$", **kw) -> list[str]:
    """For responses keyed by instrument (quote, ohlc, ltp): every value against the mock values' schema."""
    schema = merge(list(mock.values()))
    out: list[str] = []
    for k, v in ours.items():
        out += compare(schema, v, f"{path}[{k}]", **kw)
    return out
