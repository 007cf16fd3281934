"""The option strategies' structures, laid out on today's chain for a what-if payoff: which strikes each
one trades, around the at-the-money strike, ``steps`` strikes out and ``wing`` strikes further for the
protective legs. Entries are the legs' last prices (what it would cost now)."""

from __future__ import annotations

from datetime import date

from gateway.option_book import Leg

STRUCTURES = {
    "iron_condor": "sell the strangle, buy wings (defined risk, earns time decay)",
    "short_straddle": "sell the ATM call and put",
    "short_strangle": "sell a call and a put `steps` strikes out",
    "long_straddle": "buy the ATM call and put",
    "bull_call_spread": "buy the ATM call, sell one `steps` higher",
    "bear_put_spread": "buy the ATM put, sell one `steps` lower",
}


class StructureError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _at(chain: dict, offset: int, kind: str) -> dict:
    rows = chain["strikes"]
    atm = next(i for i, r in enumerate(rows) if r["atm"])
    i = atm + offset
    leg = rows[i][kind.lower()] if 0 <= i < len(rows) else None
    if not leg or not leg.get("ltp"):
        raise StructureError("steps", f"no priced {kind} {abs(offset)} strikes {'above' if offset > 0 else 'below'} "
                                      "the money in this chain: fewer steps or a wider chain")
    return {**leg, "strike": rows[i]["strike"]}


def build(chain: dict, structure: str, lots: int = 1, steps: int = 2, wing: int = 2) -> list[Leg]:
    """The legs of ``structure`` on ``chain`` (``gateway.option_chain.option_chain_view``'s answer)."""
    if structure not in STRUCTURES:
        raise StructureError("structure", f"structure: one of {', '.join(STRUCTURES)}")
    if not 1 <= lots <= 50 or not 1 <= steps <= 10 or not 1 <= wing <= 10:
        raise StructureError("lots", "lots 1 to 50, steps and wing 1 to 10")
    plan = {
        "iron_condor": [(steps, "CE", -1), (steps + wing, "CE", 1), (-steps, "PE", -1), (-steps - wing, "PE", 1)],
        "short_straddle": [(0, "CE", -1), (0, "PE", -1)],
        "short_strangle": [(steps, "CE", -1), (-steps, "PE", -1)],
        "long_straddle": [(0, "CE", 1), (0, "PE", 1)],
        "bull_call_spread": [(0, "CE", 1), (steps, "CE", -1)],
        "bear_put_spread": [(0, "PE", 1), (-steps, "PE", -1)],
    }[structure]
    expiry = date.fromisoformat(chain["expiry"])
    units = lots * chain["lot_size"]
    legs = []
    for offset, kind, sign in plan:
        leg = _at(chain, offset, kind)
        legs.append(Leg(tradingsymbol=leg["tradingsymbol"], kind=kind, quantity=sign * units, entry=leg["ltp"],
                        last=leg["ltp"], strike=leg["strike"], expiry=expiry, strategy=structure))
    return legs
