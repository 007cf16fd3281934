"""Multi-leg groups under random fault plans always end flat and journaled.

A plan names a structure (a 2-lot bear call spread, or a 1-lot iron condor) and at most one failing
leg (its index in placing order: hedges first) with what goes wrong there: the RMS rejects it, it
fills partially and the rest is cancelled, or it never fills (the group times out). kite_sim's
faults hit the *next* orders, so a fault on leg 0 is set before the group is sent, and a fault on
leg 1 is set while leg 0 is held unfilled (``hold_fills``) and released right after. Further legs
fail the way a real exchange makes them fail: a limit far from the market rests until the timeout, and a
limit price outside the circuit band would be rejected — so risk refuses the group before any leg is placed
(``PRICE_OUTSIDE_BAND``: the band is known from the legs' quote)."""

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from shared.trading.hedge import entry_order
from shared import messages as m
from shared import subjects
from tests.execution_worker.kit import USER, broker, group_tag_digest, nifty_chain, option_leg
from tests.helpers import eventually

pytestmark = pytest.mark.slow(seconds=27)

FINAL = ("completed", "rolled_back", "needs_attention")
_counter = iter(range(1_000_000))

spread_plans = st.tuples(st.just("spread"), st.one_of(
    st.none(), st.tuples(st.integers(0, 1), st.sampled_from(["reject", "partial", "hold"]))))
condor_plans = st.tuples(st.just("condor"), st.one_of(
    st.none(), st.tuples(st.integers(0, 3), st.sampled_from(["reject", "hold"]))))


async def legs_for(kite, structure: str, fault) -> list[m.Leg]:
    calls = await nifty_chain(kite, "CE")
    if structure == "spread":
        legs = [option_leg(calls[26200.0], "BUY", True, lots=2), option_leg(calls[26000.0], "SELL", False, lots=2)]
    else:
        puts = await nifty_chain(kite, "PE")
        legs = [option_leg(puts[25600.0], "BUY", True), option_leg(calls[26400.0], "BUY", True),
                option_leg(puts[25800.0], "SELL", False), option_leg(calls[26200.0], "SELL", False)]
    legs = entry_order(legs)
    if fault and fault[0] >= 1 and (fault[1] == "hold" or fault[0] >= 2):
        k, kind = fault  # the exchange's own way of failing this leg
        leg = legs[k]
        q = (await broker(kite.quote, f"NFO:{leg.tradingsymbol}"))[f"NFO:{leg.tradingsymbol}"]
        buy = leg.transaction_type is m.TransactionType.BUY
        if kind == "reject":  # beyond the circuit band
            price = q.lower_circuit_limit * 0.5 if buy else q.upper_circuit_limit * 1.5
        else:  # inside the band, far from the market: rests unfilled
            price = max(q.lower_circuit_limit, q.last_price * 0.6) if buy else min(q.upper_circuit_limit, q.last_price * 1.4)
        legs[k] = m.Leg(**{**{f: getattr(leg, f) for f in leg.__struct_fields__},
                           "order_type": m.OrderType.LIMIT, "price": m.to_paise(round(price, 1))})
    return legs


def net(positions, symbols) -> dict[str, int]:
    have = {p.tradingsymbol: p.quantity for p in positions.net if p.tradingsymbol in symbols}
    return {s: have.get(s, 0) for s in symbols}


async def run_group(bus, sim, journal, group: m.SignalGroup, fault) -> str:
    sim_fault = fault and (fault[0] == 0 or (fault[0] == 1 and fault[1] != "hold"))
    fault_kw = {"reject": {"reject_next": 1}, "partial": {"partial_then_cancel_next": 1},
                "hold": {"hold_fills": True}}
    if sim_fault and fault[0] == 0:
        sim.faults(**fault_kw[fault[1]])
    elif sim_fault:
        sim.faults(hold_fills=True)  # leg 0 rests until the fault for leg 1 is armed
    await bus.js_publish(subjects.signals(USER), group, msg_id=group.id)
    if sim_fault and fault[0] == 1:
        await eventually(lambda: any(r.get("order_id") for r in journal.orders_of_group(group.id)),
                         what="leg 0 placed")
        sim.faults(hold_fills=False, **fault_kw[fault[1]])
    state = await eventually(lambda: _refused(journal, group.id) or (journal.group(group.id) or {}).get("state") in FINAL
                             and journal.group(group.id)["state"], timeout=30, what=f"group {group.id} finished")
    sim.reset_faults()
    return state


def _refused(journal, group_id: str) -> str:
    row = journal.signal(group_id)
    return "refused" if row and row.get("decision") == "refused" else ""


async def assert_journaled(kite, journal, group_id: str) -> None:
    """Every broker order of the group is in the journal, and so is every fill of those orders."""
    digest = group_tag_digest(group_id)
    ours = {o.order_id for o in await broker(kite.orders) if o.tag and o.tag[1:15] == digest}
    assert ours and ours <= {r["order_id"] for r in journal.orders_of_group(group_id)}
    broker_trades = {t.trade_id for t in await broker(kite.trades) if t.order_id in ours}

    def journaled():
        return broker_trades <= {t["trade_id"] for t in journal.trades(USER) if t["order_id"] in ours}

    await eventually(journaled, what="every fill journaled")


@pytest.mark.timeout(170)
@settings(max_examples=4, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(plan=st.one_of(spread_plans, condor_plans))
@example(plan=("spread", (1, "reject")))
@example(plan=("spread", (0, "partial")))
@example(plan=("condor", (3, "hold")))
async def test_groups_under_fault_plans_end_flat_and_journaled(bus, sim, stack, plan):
    _, journal, kite = stack
    structure, fault = plan
    legs = await legs_for(kite, structure, fault)
    symbols = [leg.tradingsymbol for leg in legs]
    before = net(await broker(kite.positions), symbols)
    name = "bear_call_spread" if structure == "spread" else "iron_condor"
    group = m.SignalGroup(id=f"grp-fault-{next(_counter)}", user_id=USER, strategy_id=f"{structure}-1", strategy=name,
                          structure=name, underlying="NIFTY", legs=legs)
    state = await run_group(bus, sim, journal, group, fault)
    if fault and fault[0] >= 2 and fault[1] == "reject":  # beyond the circuit band: never sent
        assert state == "refused" and journal.signal(group.id)["code"] == "PRICE_OUTSIDE_BAND", journal.signal(group.id)
        assert not journal.orders_of_group(group.id)
        assert net(await broker(kite.positions), symbols) == before, plan
        return
    await assert_journaled(kite, journal, group.id)
    if fault is None:
        assert state == "completed", journal.group(group.id)
        opened = net(await broker(kite.positions), symbols)
        assert opened == {leg.tradingsymbol: before[leg.tradingsymbol] + leg.quantity *
                          (1 if leg.transaction_type is m.TransactionType.BUY else -1) for leg in legs}
        exit_legs = [m.Leg(**{**{f: getattr(leg, f) for f in leg.__struct_fields__},
                              "transaction_type": leg.transaction_type.opposite}) for leg in legs]
        out = m.SignalGroup(id=f"{group.id}-exit", user_id=USER, strategy_id=group.strategy_id, strategy=name,
                            structure=name, underlying="NIFTY", legs=exit_legs, intent="exit")
        assert await run_group(bus, sim, journal, out, None) == "completed", journal.group(out.id)
        await assert_journaled(kite, journal, out.id)
    else:
        assert state == "rolled_back", (plan, journal.group(group.id))
        kinds = [r["kind"] for r in journal.orders_of_group(group.id)]
        assert kinds.count("entry") == fault[0] + 1  # nothing placed after the failing leg
    assert net(await broker(kite.positions), symbols) == before, plan
