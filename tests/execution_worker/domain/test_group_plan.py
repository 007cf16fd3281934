"""The pure group placement plan (shared/trading/group.py) both the execution worker and the backtest follow."""

from __future__ import annotations

from shared.trading.group import ROLLBACK_INDEX, GroupPlacement
from tests.execution_worker.domain.kit import group, leg


def condor(**kw):
    return group("iron_condor", [leg("SC", "SELL", "CE", 2550000), leg("SP", "SELL", "PE", 2450000),
                                 leg("LC", "BUY", "CE", 2600000), leg("LP", "BUY", "PE", 2400000)], **kw)


def run(plan: GroupPlacement, fills: dict[str, int]) -> list[tuple[str, str, str, int]]:
    """Carry the plan out: each leg fills ``fills.get(symbol, its quantity)`` units."""
    steps = []
    while (step := plan.next()) is not None:
        got = fills.get(step.leg.tradingsymbol, step.leg.quantity) if step.kind == "entry" else \
            fills.get(f"{step.kind}:{step.leg.tradingsymbol}", step.leg.quantity)
        steps.append((step.kind, step.leg.tradingsymbol, step.leg.transaction_type.value, step.leg.quantity))
        plan.done(step, got, got == step.leg.quantity, f"leg {step.leg.tradingsymbol}: REJECTED")
    return steps


def test_hedges_go_in_first_and_a_complete_group_ends_completed():
    plan = GroupPlacement(condor())
    assert [s[1] for s in run(plan, {})] == ["LC", "LP", "SC", "SP"]
    assert (plan.state, plan.detail, plan.code) == ("completed", "", "")


def test_a_failed_short_rolls_back_exactly_what_filled():
    plan = GroupPlacement(condor())
    steps = run(plan, {"SC": 25})  # the short call fills half, then the leg ends
    assert steps[:3] == [("entry", "LC", "BUY", 50), ("entry", "LP", "BUY", 50), ("entry", "SC", "SELL", 50)]
    # the part of the short that filled is bought back before the wings are sold
    assert steps[3:] == [("rollback", "SC", "BUY", 25), ("rollback", "LC", "SELL", 50), ("rollback", "LP", "SELL", 50)]
    assert plan.state == "rolled_back" and plan.detail == "leg SC: REJECTED" and plan.code == ""
    assert plan.reason == "leg SC: REJECTED"


def test_rollback_legs_have_their_own_indexes_and_an_incomplete_rollback_needs_attention():
    plan = GroupPlacement(condor())
    indexes = []
    while (step := plan.next()) is not None:
        indexes.append((step.kind, step.index))
        bad = step.leg.tradingsymbol == "LP" and step.kind == "entry" or step.kind == "rollback"
        plan.done(step, 0 if bad else step.leg.quantity, not bad, "leg LP: CANCELLED no fill")
    assert indexes == [("entry", 0), ("entry", 1), ("rollback", ROLLBACK_INDEX)]
    assert plan.state == "needs_attention" and plan.code == "NEEDS_ATTENTION"
    assert plan.detail == "leg LP: CANCELLED no fill; rollback incomplete: check positions"


def test_nothing_filled_is_rolled_back_at_once():
    plan = GroupPlacement(condor())
    steps = run(plan, {"LC": 0})
    assert steps == [("entry", "LC", "BUY", 50)] and plan.state == "rolled_back"


def test_exit_closes_the_decided_quantities_shorts_first_and_places_every_leg():
    g = group("iron_condor", [leg("LC", "SELL", "CE", 2600000), leg("SC", "BUY", "CE", 2550000),
                              leg("LP", "SELL", "PE", 2400000), leg("SP", "BUY", "PE", 2450000)], intent="exit")
    plan = GroupPlacement(g, (50, 50, 0, 50))  # risk: nothing left of LP to close
    steps = run(plan, {"exit:SP": 0})
    assert [(s[1], s[3]) for s in steps] == [("SC", 50), ("SP", 50), ("LC", 50)]
    assert plan.state == "needs_attention" and plan.detail == "exit legs did not all fill"
    assert plan.reason == "exit legs did not all fill: check positions" and plan.code == "NEEDS_ATTENTION"


def test_an_exit_keeps_the_wings_of_a_short_it_could_not_buy_back():
    """The short call's buy-back did not fill: the long call still covers it and is not sold (it was, and the
    soak saw a naked short call for 15 s); the put side closes."""
    g = group("iron_condor", [leg("LC", "SELL", "CE", 2600000), leg("SC", "BUY", "CE", 2550000),
                              leg("LP", "SELL", "PE", 2400000), leg("SP", "BUY", "PE", 2450000)], intent="exit")
    plan = GroupPlacement(g)
    steps = run(plan, {"exit:SC": 0})
    assert [(s[1], s[2]) for s in steps] == [("SC", "BUY"), ("SP", "BUY"), ("LP", "SELL")]
    assert plan.state == "needs_attention" and [leg.tradingsymbol for leg in plan.kept] == ["LC"]
    assert plan.detail == "exit legs did not all fill; kept LC covering a short still open"


def test_an_exit_keeps_the_wings_of_a_short_left_open_whatever_it_does():
    """Risk decided none of the short put's buy-back (an earlier exit's buy-back still works on it): the short put
    stays open whatever this exit does, so its long put is kept (soak seed 37: sold, 25 s naked); the call side
    closes, and its legs keep the tags they always had."""
    g = group("iron_condor", [leg("LC", "SELL", "CE", 2600000), leg("SC", "BUY", "CE", 2550000),
                              leg("LP", "SELL", "PE", 2400000), leg("SP", "BUY", "PE", 2450000)], intent="exit")
    plan = GroupPlacement(g, (50, 50, 50, 0), left_open={"PE"})
    steps = run(plan, {})
    assert [(s[1], s[2]) for s in steps] == [("SC", "BUY"), ("LC", "SELL")]
    assert [s.index for s in GroupPlacement(g, (50, 50, 50, 0)).planned if s.leg.tradingsymbol in ("SC", "LC")] \
        == [s.index for s in plan.planned]
    assert plan.state == "needs_attention" and [leg.tradingsymbol for leg in plan.kept] == ["LP"]
    assert plan.detail == "exit legs did not all fill; kept LP covering a short still open"
