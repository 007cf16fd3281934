"""Hedge rules for multi-leg option structures: which groups may be placed at all, and in which
order their legs go in (hedges first, so margin never spikes) and come out (short legs first, so no
short is ever left without its wing)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec

from shared.messages import Leg, SignalGroup, TransactionType

# Structures that are naked short by design; placed only for users who opted in.
NAKED_STRUCTURES = frozenset({"short_straddle", "short_strangle", "straddle", "strangle"})
WINGED_STRUCTURES = frozenset({"iron_condor", "iron_butterfly", "hedged_straddle", "hedged_strangle"})
# name → (option type, which leg has the lower strike)
SPREADS = {
    "bull_call_spread": ("CE", "long"),
    "bear_call_spread": ("CE", "short"),
    "bull_put_spread": ("PE", "long"),
    "bear_put_spread": ("PE", "short"),
}
OPTION_TYPES = ("CE", "PE")


def is_short(leg: Leg) -> bool:
    return leg.transaction_type is TransactionType.SELL


def _covers(long: Leg, short: Leg) -> bool:
    """A long option caps a short's loss when it is of the same type and expires no earlier."""
    return long.option_type == short.option_type and long.expiry >= short.expiry


def uncovered_shorts(legs: Sequence[Leg]) -> list[str]:
    """Short option quantity no long leg covers, as "SYMBOL: n short uncovered" lines (empty when
    hedged)."""
    return [f"{symbol}: {n} short uncovered" for symbol, n in uncovered_quantities(legs).items()]


def uncovered_quantities(legs: Sequence[Leg]) -> dict[str, int]:
    """Per short option leg with quantity no long leg covers, that quantity. Shorts are served latest
    expiry first, since a wing that covers one covers the rest."""
    problems = {}
    spare = {i: leg.quantity for i, leg in enumerate(legs) if not is_short(leg)}
    shorts = [leg for leg in legs if is_short(leg) and leg.option_type in OPTION_TYPES]
    for short in sorted(shorts, key=lambda leg: leg.expiry, reverse=True):
        needed = short.quantity
        for i in spare:
            if needed and spare[i] and _covers(legs[i], short):
                used = min(needed, spare[i])
                spare[i] -= used
                needed -= used
        if needed:
            problems[short.tradingsymbol] = problems.get(short.tradingsymbol, 0) + needed
    return problems


class HedgeValidator:
    """``allow_naked`` is the user's opt-in for naked-short structures (off by default)."""

    def __init__(self, allow_naked: bool = False) -> None:
        self.allow_naked = allow_naked

    def validate(self, group: SignalGroup) -> tuple[bool, str]:
        reason = self._problem(group)
        return (reason == "", reason)

    def _problem(self, group: SignalGroup) -> str:
        legs = group.legs
        if not legs:
            return "group has no legs"
        for leg in legs:
            if leg.quantity % leg.lot_size:
                return f"{leg.tradingsymbol}: quantity {leg.quantity} is not a multiple of lot size {leg.lot_size}"
        if group.intent == "exit":
            return ""
        structure = group.structure
        if structure in SPREADS:
            problem = _spread_problem(structure, legs)
        elif structure in WINGED_STRUCTURES:
            problem = _winged_problem(structure, legs)
        else:
            problem = ""
        if problem:
            return f"{structure}: {problem}"
        naked = uncovered_shorts(legs)
        if naked and not (self.allow_naked and structure in NAKED_STRUCTURES):
            why = "needs the user's opt-in" if structure in NAKED_STRUCTURES else "is not allowed"
            return f"{structure}: naked short option {why} ({'; '.join(naked)})"
        return ""


def _spread_problem(structure: str, legs: Sequence[Leg]) -> str:
    option_type, lower = SPREADS[structure]
    if len(legs) != 2:
        return f"a spread has 2 legs, got {len(legs)}"
    longs = [leg for leg in legs if not is_short(leg)]
    shorts = [leg for leg in legs if is_short(leg)]
    if len(longs) != 1 or len(shorts) != 1:
        return "a spread needs one long and one short leg"
    long, short = longs[0], shorts[0]
    if long.option_type != option_type or short.option_type != option_type:
        return f"both legs must be {option_type}"
    if long.quantity != short.quantity:
        return f"long quantity {long.quantity} != short quantity {short.quantity}"
    if long.strike == short.strike or (long.strike < short.strike) != (lower == "long"):
        return f"the {lower} leg must have the lower strike"
    return ""


def _winged_problem(structure: str, legs: Sequence[Leg]) -> str:
    shorts = {t: [leg for leg in legs if is_short(leg) and leg.option_type == t] for t in OPTION_TYPES}
    longs = {t: [leg for leg in legs if not is_short(leg) and leg.option_type == t] for t in OPTION_TYPES}
    for t in OPTION_TYPES:
        if len(shorts[t]) != 1 or len(longs[t]) != 1:
            return f"needs one short and one long {t}, got {len(shorts[t])} short and {len(longs[t])} long"
        if shorts[t][0].quantity != longs[t][0].quantity:
            return f"{t} short quantity {shorts[t][0].quantity} != wing quantity {longs[t][0].quantity}"
    if longs["CE"][0].strike <= shorts["CE"][0].strike or longs["PE"][0].strike >= shorts["PE"][0].strike:
        return "each wing must be further out of the money than its short"
    if shorts["CE"][0].quantity != shorts["PE"][0].quantity:
        return f"call quantity {shorts['CE'][0].quantity} != put quantity {shorts['PE'][0].quantity}"
    if structure in ("iron_butterfly", "hedged_straddle") and shorts["CE"][0].strike != shorts["PE"][0].strike:
        return "the short call and put must share a strike"
    return ""


def entry_order(legs: Iterable[Leg]) -> list[Leg]:
    """Hedges (long legs) first, then the shorts they cover; the original order otherwise."""
    legs = list(legs)
    return [leg for leg in legs if not is_short(leg)] + [leg for leg in legs if is_short(leg)]


def exit_order(legs: Iterable[Leg]) -> list[Leg]:
    """The legs of an open position in the order to close them: short legs before their hedges."""
    legs = list(legs)
    return [leg for leg in legs if is_short(leg)] + [leg for leg in legs if not is_short(leg)]


def closing_legs(legs: Iterable[Leg]) -> list[Leg]:
    """The orders that close an open position's legs (each leg reversed), short legs bought back first."""
    return [msgspec.structs.replace(leg, transaction_type=leg.transaction_type.opposite) for leg in exit_order(legs)]


def closing_order(legs: Iterable[Leg]) -> list[Leg]:
    """Closing trades (the legs of an exit group) in order: buying back shorts before selling hedges."""
    legs = list(legs)
    return [leg for leg in legs if not is_short(leg)] + [leg for leg in legs if is_short(leg)]
