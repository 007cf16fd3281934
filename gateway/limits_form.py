"""The risk-limits form: ``RiskLimits`` (paise) shown in rupees a trader types, and read back with every
bad field named. The bounds are the message's own (``msgspec.Meta``), plus the rules only a whole form
can check (a per-symbol or per-strategy exposure above the account's own cap limits nothing)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec

from shared import validation
from shared.messages import RiskLimits


@dataclass(frozen=True)
class LimitField:
    name: str
    label: str
    kind: str  # rupees | pct | int | float | bool
    help: str


FIELDS = (
    LimitField("max_daily_loss", "Daily loss limit (₹)", "rupees",
               "past it the kill switch halts: nothing new, open orders cancelled"),
    LimitField("warn_daily_loss_pct", "Reduce-only from (% of the loss limit)", "pct",
               "past it only orders that reduce a position go through"),
    LimitField("max_position_qty", "Max position (quantity)", "int", "per instrument, shares or units"),
    LimitField("max_position_lots", "Max position (lots)", "int", "per F&O instrument"),
    LimitField("max_exposure", "Max exposure (₹)", "rupees", "the whole account, at the last price"),
    LimitField("max_exposure_per_symbol", "Max exposure per symbol (₹)", "rupees", "at most the account's"),
    LimitField("max_exposure_per_strategy", "Max exposure per strategy (₹)", "rupees", "at most the account's"),
    LimitField("max_orders_per_minute", "Max orders a minute", "int", "kta's own cap, under Kite's 400/min"),
    LimitField("max_open_orders", "Max open orders", "int", "working at the broker at once"),
    LimitField("max_net_delta", "Max net delta per underlying", "float", "units of the underlying"),
    LimitField("max_net_vega", "Max net vega per underlying (₹ per vol point)", "float", ""),
    LimitField("flatten_on_halt", "Square off everything when the kill switch halts", "bool", ""),
)


def form_values(limits: RiskLimits | Mapping[str, Any]) -> dict[str, str]:
    """The limits as the form shows them (rupees for paise fields)."""
    data = msgspec.to_builtins(limits) if isinstance(limits, RiskLimits) else dict(limits)
    out: dict[str, str] = {}
    for f in FIELDS:
        value = data.get(f.name)
        if f.kind == "rupees":
            out[f.name] = f"{Decimal(int(value)) / 100:.2f}" if value is not None else ""
        elif f.kind == "bool":
            out[f.name] = "on" if value else ""
        else:
            out[f.name] = "" if value is None else f"{value:g}" if isinstance(value, float) else str(value)
    return out


def _number(f: LimitField, raw: str) -> tuple[Any, str]:
    try:
        number = Decimal(raw.replace(",", "").replace("₹", "").strip())
    except InvalidOperation:
        return None, f"{f.name}: a number is needed, not {raw!r}"
    if not number.is_finite() or number <= 0:
        return None, f"{f.name}: must be above zero"
    if f.kind == "rupees":
        if number != number.quantize(Decimal("0.01")):
            return None, f"{f.name}: rupees with at most two decimals (paise)"
        return int(number * 100), ""
    if f.kind == "int":
        if number != number.to_integral_value():
            return None, f"{f.name}: a whole number is needed"
        return int(number), ""
    if f.kind == "pct" and number > 100:
        return None, f"{f.name}: at most 100 (%)"
    return float(number), ""


def exposure_errors(data: Mapping[str, Any]) -> dict[str, str]:
    """A per-symbol or per-strategy cap above the account's own limits nothing: named as an error."""
    cap = data.get("max_exposure")
    return {part: f"{part}: above the account's max exposure, it would limit nothing"
            for part in ("max_exposure_per_symbol", "max_exposure_per_strategy")
            if cap is not None and isinstance(data.get(part), int) and data[part] > cap}


def parse_limits(form: Mapping[str, Any]) -> tuple[RiskLimits | None, dict[str, str], dict[str, str]]:
    """(the limits or None, the values as typed, every error by field)."""
    values: dict[str, str] = {}
    data: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for f in FIELDS:
        raw = str(form.get(f.name) or "").strip()
        values[f.name] = raw
        if f.kind == "bool":
            data[f.name] = raw.lower() in ("on", "true", "1", "yes")
            continue
        if not raw:
            errors[f.name] = f"{f.name}: a value is needed"
            continue
        value, message = _number(f, raw)
        if message:
            errors[f.name] = message
        else:
            data[f.name] = value
    errors |= {k: v for k, v in exposure_errors(data).items() if k not in errors}
    if errors:
        return None, values, errors
    try:
        return msgspec.convert(data, RiskLimits), values, {}
    except msgspec.ValidationError as e:  # a bound of the message itself
        field = validation.path(e) or "limits"
        return None, values, {field: f"{field}: {validation.reason(e)}"}
