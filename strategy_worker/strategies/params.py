"""The settings every strategy of a kind shares, defined once. A strategy's ``Params`` subclasses
one of these and adds its own fields (msgspec carries ``kw_only`` and ``forbid_unknown_fields`` over
to subclasses); the catalog lists a strategy's own fields first."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from strategy_worker.strategies.param_rules import ordered


class EquityParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Size and product of a single-instrument strategy (a stock, or an index through its future)."""

    lots: Annotated[int, Meta(ge=1, le=50, description="Lots per trade (F&O / indices)")] = 1
    quantity: Annotated[int, Meta(ge=1, le=100_000, description="Shares per trade (equities)")] = 1
    intraday: Annotated[bool, Meta(description="MIS (intraday, long or short) rather than CNC (delivery: long only) / NRML (F&O)")] = True


class OptionParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Size, exits and timing of an option structure on the nearest expiry."""

    lots: Annotated[int, Meta(ge=1, le=50, description="Lots per leg")] = 1
    target_pct: Annotated[float, Meta(ge=0.05, le=5, description="Exit at this gain, fraction of the entry premium")] = 0.5
    stop_pct: Annotated[float, Meta(ge=0.05, le=5, description="Exit at this loss, fraction of the entry premium")] = 1.0
    entry_after_minute: Annotated[int, Meta(ge=555, le=900, description="Earliest entry, minutes after midnight IST")] = 570
    exit_minute: Annotated[int, Meta(ge=600, le=930, description="Time exit, minutes after midnight IST")] = 915
    min_days_to_expiry: Annotated[int, Meta(ge=0, le=60, description="Skip expiries closer than this")] = 0

    def __post_init__(self) -> None:  # a subclass with rules of its own calls this too
        ordered("entry_after_minute", self.entry_after_minute, "exit_minute", self.exit_minute, "must be before")


SHARED_FIELDS = {f.name for base in (EquityParams, OptionParams) for f in msgspec.structs.fields(base)}
