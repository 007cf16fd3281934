import pytest

from shared.trading.hedge import HedgeValidator, closing_legs, closing_order, entry_order, exit_order, uncovered_shorts

from .kit import group, leg


def condor(qty=(50, 50, 50, 50), strikes=(24000, 24500, 25500, 26000)):
    pw, ps, cs, cw = strikes
    return [leg("PW", "BUY", "PE", pw * 100, qty[0]), leg("PS", "SELL", "PE", ps * 100, qty[1]),
            leg("CS", "SELL", "CE", cs * 100, qty[2]), leg("CW", "BUY", "CE", cw * 100, qty[3])]


GOOD = [
    ("iron_condor", condor()),
    ("iron_butterfly", condor(strikes=(24000, 25000, 25000, 26000))),
    ("hedged_strangle", condor()),
    ("bull_call_spread", [leg("A", "BUY", "CE", 25000_00), leg("B", "SELL", "CE", 25500_00)]),
    ("bear_call_spread", [leg("A", "SELL", "CE", 25000_00), leg("B", "BUY", "CE", 25500_00)]),
    ("bull_put_spread", [leg("A", "BUY", "PE", 24000_00), leg("B", "SELL", "PE", 24500_00)]),
    ("bear_put_spread", [leg("A", "SELL", "PE", 24000_00), leg("B", "BUY", "PE", 24500_00)]),
    ("long_straddle", [leg("C", "BUY", "CE", 25000_00), leg("P", "BUY", "PE", 25000_00)]),
    ("calendar_spread", [leg("N", "SELL", "CE", 25000_00), leg("F", "BUY", "CE", 25000_00, expiry="2026-12-31")]),
]

BAD = [
    ("iron_condor", condor(qty=(50, 50, 50, 100)), "wing quantity"),
    ("iron_condor", condor(qty=(100, 100, 50, 50)), "call quantity 50 != put quantity 100"),
    ("iron_condor", condor()[:3], "one short and one long CE"),
    ("iron_condor", condor(strikes=(24600, 24500, 25500, 26000)), "further out of the money"),
    ("hedged_strangle", [*condor()[:3], leg("CW", "BUY", "CE", 26000_00, expiry="2026-11-19")], "CS: 50 short uncovered"),
    ("bull_call_spread", [leg("A", "BUY", "CE", 25000_00), leg("B", "SELL", "CE", 25500_00, 100)], "long quantity"),
    ("bull_call_spread", [leg("A", "BUY", "CE", 25500_00), leg("B", "SELL", "CE", 25000_00)], "lower strike"),
    ("bull_call_spread", [leg("A", "BUY", "PE", 25000_00), leg("B", "SELL", "PE", 25500_00)], "must be CE"),
    ("bull_put_spread", [leg("A", "BUY", "PE", 24000_00), leg("B", "SELL", "CE", 24500_00)], "must be PE"),
    ("short_straddle", [leg("C", "SELL", "CE", 25000_00), leg("P", "SELL", "PE", 25000_00)], "opt-in"),
    ("ratio_spread", [leg("A", "BUY", "CE", 25000_00, 50), leg("B", "SELL", "CE", 25500_00, 100)], "not allowed"),
    ("calendar_spread", [leg("N", "SELL", "CE", 25000_00, expiry="2026-12-31"), leg("F", "BUY", "CE", 25000_00)],
     "uncovered"),
    ("iron_condor", [*condor()[:3], leg("CW", "BUY", "CE", 26000_00, 25)], "lot size"),
    ("bull_call_spread", [leg("A", "BUY", "CE", 25000_00, 60), leg("B", "SELL", "CE", 25500_00, 60)], "lot size"),
]


@pytest.mark.parametrize("structure,legs", GOOD, ids=[s for s, _ in GOOD])
def test_balanced_structures_pass(structure, legs):
    assert HedgeValidator().validate(group(structure, legs)) == (True, "")


@pytest.mark.parametrize("structure,legs,why", BAD, ids=[f"{s}-{i}" for i, (s, _, _) in enumerate(BAD)])
def test_unbalanced_structures_are_refused_with_the_reason(structure, legs, why):
    ok, reason = HedgeValidator().validate(group(structure, legs))
    assert not ok and why in reason


def test_naked_structure_only_with_opt_in():
    straddle = group("short_straddle", [leg("C", "SELL", "CE", 25000_00), leg("P", "SELL", "PE", 25000_00)])
    assert HedgeValidator(allow_naked=True).validate(straddle) == (True, "")
    naked_condor = group("iron_condor_naked", [leg("C", "SELL", "CE", 25000_00)])
    assert not HedgeValidator(allow_naked=True).validate(naked_condor)[0]


def test_one_wing_can_cover_two_shorts_of_the_same_side():
    legs = [leg("S1", "SELL", "CE", 25000_00), leg("S2", "SELL", "CE", 25500_00), leg("W", "BUY", "CE", 26000_00, 100)]
    assert uncovered_shorts(legs) == []
    assert uncovered_shorts(legs[:2] + [leg("W", "BUY", "CE", 25200_00, 50)]) == ["S2: 50 short uncovered"]


def test_leg_orders():
    legs = condor()
    assert [x.tradingsymbol for x in entry_order(legs)] == ["PW", "CW", "PS", "CS"]
    assert [x.tradingsymbol for x in exit_order(legs)] == ["PS", "CS", "PW", "CW"]
    closing = closing_legs(legs)
    assert [(x.tradingsymbol, x.transaction_type) for x in closing] == [
        ("PS", "BUY"), ("CS", "BUY"), ("PW", "SELL"), ("CW", "SELL")]
    assert [x.tradingsymbol for x in closing_order(list(reversed(closing)))] == ["CS", "PS", "CW", "PW"]
