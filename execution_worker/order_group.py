"""Multi-leg option groups placed atomically: hedges first, then short legs; on any reject, partial
fill or timeout, cancel what is open and square off what filled (shorts before their hedges),
leaving the account as it was. Every step is journaled; the group ends completed, rolled_back or
needs_attention (which alerts)."""

from __future__ import annotations

import logging

import msgspec

from execution_worker import placing
from execution_worker.engine import Desk
from execution_worker.journal import ACCEPTED, REFUSED
from execution_worker.signals import decided_quantities, judge
from shared.messages import Leg, SignalGroup
from shared.trading import planning
from shared.trading.hedge import HedgeValidator, closing_legs, closing_order, entry_order
from shared.trading.order import Order, OrderState

log = logging.getLogger("kta.order_group")


def filled(orders: list[Order]) -> int:
    return sum(o.filled_quantity for o in orders)


async def place_leg(desk: Desk, group: SignalGroup, leg: Leg, index: int, kind: str,
                    timeout: float) -> tuple[list[Order], bool]:
    """One leg (its freeze slices) placed and waited for; True when it filled completely."""
    inst = desk.inst(leg.exchange.value, leg.tradingsymbol)
    orders = []
    price = desk.prices.known(f"{leg.exchange.value}:{leg.tradingsymbol}")
    for req in planning.leg_request(desk.user_id, group.id, leg, index, kind, desk.market_protection, inst):
        await placing.place(desk, planning.marketable(req, inst, price), group.strategy_id)
        order = desk.book.get(req.tag)
        if order is not None:
            orders.append(order)
    await placing.wait_final(desk, orders, timeout)
    ok = bool(orders) and all(o.state is OrderState.COMPLETE and o.filled_quantity == o.quantity for o in orders)
    return orders, ok and filled(orders) == leg.quantity


async def execute_with_rollback(desk: Desk, group: SignalGroup, timeout: float,
                                validator: HedgeValidator | None = None) -> str:
    j = desk.journal
    decision = j.signal_decision(group.id)
    if decision == REFUSED:
        return "refused"
    existing = j.group(group.id)
    if existing and existing["state"] in ("completed", "rolled_back", "needs_attention"):
        return existing["state"]
    if decision is None:
        ok, reason = (validator or HedgeValidator()).validate(group)
        verdict = None
        if ok:
            verdict = await judge(desk, group)
            ok, reason = verdict.ok, verdict.reason
        if not ok:
            code = verdict.code if verdict else "HEDGE_MISMATCH"
            j.record_signal(group, REFUSED, reason, code)
            if not verdict:
                j.record_risk_event(desk.user_id, code=code, message=reason, signal_id=group.id)
            await desk.outcomes.emit(f"refused:{group.id}", kind="refused", strategy_id=group.strategy_id,
                                     group_id=group.id, order_kind=group.intent, code=code, reason=reason)
            log.warning("group %s refused: %s", group.id, reason)
            return "refused"
        j.record_signal(group, ACCEPTED, verdict.reason, quantities=verdict.quantities)
        await desk.outcomes.emit(f"accepted:{group.id}", kind="accepted", strategy_id=group.strategy_id,
                                 group_id=group.id, order_kind=group.intent)
    j.record_group(group.id, desk.user_id, strategy_id=group.strategy_id, structure=group.structure, state="placing")
    if group.intent == "exit":
        decided = decided_quantities(desk, group) or tuple(leg.quantity for leg in group.legs)
        legs = [msgspec.structs.replace(leg, quantity=q) for leg, q in zip(group.legs, decided) if q]
        ok = True
        for i, leg in enumerate(closing_order(legs)):
            _, leg_ok = await place_leg(desk, group, leg, i, "exit", timeout)
            ok = ok and leg_ok
        state = "completed" if ok else "needs_attention"
        j.record_group(group.id, desk.user_id, strategy_id=group.strategy_id, structure=group.structure,
                       state=state, detail="" if ok else "exit legs did not all fill")
        if not ok:
            await legs_ended(desk, group, "NEEDS_ATTENTION", "exit legs did not all fill: check positions")
        return state
    done: list[tuple[Leg, int]] = []
    failure = ""
    for i, leg in enumerate(entry_order(group.legs)):  # one leg at a time: hedges are in before any short
        orders, ok = await place_leg(desk, group, leg, i, "entry", timeout)
        if not ok:
            for o in orders:
                if not o.is_terminal:
                    await placing.cancel(desk, o, f"group {group.id} rolled back")
            await placing.wait_final(desk, orders, timeout)
            last = orders[-1] if orders else None
            failure = f"leg {leg.tradingsymbol}: {(last.status if last else '') or 'no answer'} " \
                      f"{(last.status_message if last else '') or ''}".strip()
        if filled(orders):
            done.append((leg, filled(orders)))
        if not ok:
            break
    if not failure:
        j.record_group(group.id, desk.user_id, strategy_id=group.strategy_id, structure=group.structure,
                       state="completed")
        return "completed"
    # roll back: square off exactly what filled, short legs before their hedges
    log.warning("group %s failed (%s): rolling back %d filled legs", group.id, failure, len(done))
    back = closing_legs([Leg(**{**_leg_fields(leg), "quantity": qty}) for leg, qty in done])
    ok = True
    for k, leg in enumerate(back):
        _, leg_ok = await place_leg(desk, group, leg, 50 + k, "rollback", timeout)
        ok = ok and leg_ok
    state = "rolled_back" if ok else "needs_attention"
    j.record_group(group.id, desk.user_id, strategy_id=group.strategy_id, structure=group.structure, state=state,
                   detail=failure if ok else f"{failure}; rollback incomplete: check positions")
    if not ok:
        log.error("group %s NEEDS ATTENTION: rollback incomplete", group.id, extra={"user_id": desk.user_id})
    await legs_ended(desk, group, "" if ok else "NEEDS_ATTENTION", failure)
    return state


async def legs_ended(desk: Desk, group: SignalGroup, code: str, reason: str) -> None:
    """A group that did not complete: each leg's strategy hears it with the leg's position now."""
    for i, leg in enumerate(group.legs):
        await desk.outcomes.emit(f"rolled_back:{group.id}:{i}", kind="rolled_back", strategy_id=group.strategy_id,
                                 group_id=group.id, order_kind=group.intent, exchange=leg.exchange.value,
                                 tradingsymbol=leg.tradingsymbol, instrument_token=leg.instrument_token,
                                 transaction_type=leg.transaction_type, quantity=leg.quantity, code=code,
                                 reason=reason)


def _leg_fields(leg: Leg) -> dict:
    return {f: getattr(leg, f) for f in leg.__struct_fields__}
