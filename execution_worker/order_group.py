"""Multi-leg option groups placed atomically: hedges first, then short legs; on any reject, partial
fill or timeout, cancel what is open and square off what filled (shorts before their hedges),
leaving the account as it was. Every step is journaled; the group ends completed, rolled_back or
needs_attention (which alerts). The decision is taken under the user's lock like a signal's; the legs
are placed and waited for outside it (reserved in the order book meanwhile, so risk counts them)."""

from __future__ import annotations

import logging
from collections.abc import Coroutine
from typing import Any

from execution_worker import margin_check, placing
from execution_worker.alerts import alert
from execution_worker.engine import Desk
from execution_worker.journal import ACCEPTED, REFUSED
from execution_worker.signals import decided_quantities, judge
from shared.messages import Leg, SignalGroup
from shared.trading import margin, planning
from shared.trading.group import FINAL, ROLLBACK_INDEX, GroupPlacement
from shared.trading.hedge import HedgeValidator
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
    reqs = planning.leg_request(desk.user_id, group.id, leg, index, kind, desk.market_protection, inst)
    if kind == "rollback" and not any(desk.book.get(r.tag) for r in reqs):
        # undo what the leg filled, never more than is still held: a group redelivered after a restart resumes its
        # rollback, and meanwhile the kill switch's square-off (or a stop) may have closed the leg (CI: a wing sold twice)
        left = _closable(desk, group.strategy_id, leg)
        if not left:
            return [], True
        reqs = planning.leg_request(desk.user_id, group.id, leg, index, kind, desk.market_protection, inst,
                                    quantity=min(left, leg.quantity))
    for req in reqs:
        await placing.place(desk, planning.marketable(req, inst, price), group.strategy_id)
        order = desk.book.get(req.tag)
        if order is not None:
            orders.append(order)
    await placing.wait_final(desk, orders, timeout)
    ok = bool(orders) and all(o.state is OrderState.COMPLETE and o.filled_quantity == o.quantity for o in orders)
    return orders, ok and filled(orders) == sum(r.quantity for r in reqs)


def _closable(desk: Desk, strategy_id: str, leg: Leg) -> int:
    """How much of the strategy's position in the leg's instrument an order on the leg's side closes."""
    held = desk.tracker.held(strategy_id, leg.exchange.value, leg.tradingsymbol)[0]
    return max(0, held if leg.transaction_type.value == "SELL" else -held)


def _shorts_left_open(desk: Desk, group: SignalGroup, quantities: tuple[int, ...]) -> set[str]:
    """The option types of the exit's short legs that stay short after it: risk decided less of the buy-back than
    the strategy is short (an earlier exit's buy-back still working closes the rest — until it fills, the
    long legs of that type still cover it)."""
    if group.intent != "exit":
        return set()
    left = set()
    for leg, q in zip(group.legs, quantities or [leg.quantity for leg in group.legs]):
        held = desk.tracker.held(group.strategy_id, leg.exchange.value, leg.tradingsymbol)[0]
        if leg.option_type and leg.transaction_type.value == "BUY" and -held > q:
            left.add(leg.option_type)
    return left


async def execute_with_rollback(desk: Desk, group: SignalGroup, timeout: float,
                                validator: HedgeValidator | None = None) -> str:
    """Decide on the group and place it (a caller with the desk to itself): how it ended, or "refused"."""
    placement = await decide(desk, group, timeout, validator)
    if placement is not None:
        return await placement
    existing = desk.journal.group(group.id)
    return existing["state"] if existing else "refused"


async def decide(desk: Desk, group: SignalGroup, timeout: float,
                 validator: HedgeValidator | None = None) -> Coroutine[Any, Any, str] | None:
    """Judge the group and journal the decision (under the desk's lock, one decision at a time); its legs are
    reserved in the order book, so the user's next signals are judged with them on their way. Returns the
    placement — a leg at a time, each waited for, rolled back on a failure — for the caller to run without
    holding up those next decisions (an 8-strategy session waited 3.8 s a signal behind groups' fills).
    None: refused, or ended before (a redelivery)."""
    j = desk.journal
    decision = j.signal_decision(group.id)
    if decision == REFUSED:
        return None
    existing = j.group(group.id)
    if existing and existing["state"] in FINAL:
        return None
    if decision is None:
        ok, reason = (validator or HedgeValidator()).validate(group)
        verdict = None
        code = "HEDGE_MISMATCH"
        if ok:
            verdict = await judge(desk, group)
            ok, reason, code = verdict.ok, verdict.reason, verdict.code
        if ok and group.intent == "entry":  # every leg at once, with the spread benefit: never hedges alone
            legs = [req for i, leg in enumerate(group.legs) for req in planning.leg_request(
                desk.user_id, group.id, leg, i, "entry", desk.market_protection,
                desk.inst(leg.exchange.value, leg.tradingsymbol))]
            short = await margin_check.refusal(desk, legs)
            if short:
                ok, reason, code = False, short, margin.CODE
        if not ok:
            j.record_signal(group, REFUSED, reason, code)
            if not verdict or code == margin.CODE:
                j.record_risk_event(desk.user_id, code=code, message=reason, signal_id=group.id)
            await desk.outcomes.emit(f"refused:{group.id}", kind="refused", strategy_id=group.strategy_id,
                                     group_id=group.id, order_kind=group.intent, code=code, reason=reason)
            log.warning("group %s refused: %s", group.id, reason)
            return None
        j.record_signal(group, ACCEPTED, verdict.reason, quantities=verdict.quantities)
        await desk.outcomes.emit(f"accepted:{group.id}", kind="accepted", strategy_id=group.strategy_id,
                                 group_id=group.id, order_kind=group.intent)
    quantities = decided_quantities(desk, group) if group.intent == "exit" else ()
    plan = GroupPlacement(group, quantities, _shorts_left_open(desk, group, quantities))
    desk.book.reserve(group.id, [
        Order.from_request(req, strategy_id=group.strategy_id) for step in plan.planned
        for req in planning.leg_request(desk.user_id, group.id, step.leg, step.index, step.kind,
                                        desk.market_protection, desk.inst(step.leg.exchange.value,
                                                                          step.leg.tradingsymbol))])
    return _place(desk, group, plan, timeout)


async def _place(desk: Desk, group: SignalGroup, plan: GroupPlacement, timeout: float) -> str:
    j = desk.journal
    try:
        j.record_group(group.id, desk.user_id, strategy_id=group.strategy_id, structure=group.structure,
                       state="placing")
        while (step := plan.next()) is not None:  # one leg at a time: hedges are in before any short
            if step.kind == "entry" and (halted := placing.halted(desk)):  # no entry leg after a trip: undo what filled
                plan.done(step, 0, False, f"leg {step.leg.tradingsymbol} not placed: {halted}")
                continue
            if step.kind == "rollback" and step.index == ROLLBACK_INDEX:
                log.warning("group %s failed (%s): rolling back its filled legs", group.id, plan.failure)
            orders, ok = await place_leg(desk, group, step.leg, step.index, step.kind, timeout)
            failure = ""
            if not ok and step.kind == "entry":
                for o in orders:
                    if not o.is_terminal:
                        await placing.cancel(desk, o, f"group {group.id} rolled back")
                await placing.wait_final(desk, orders, timeout)
                last = orders[-1] if orders else None
                failure = f"leg {step.leg.tradingsymbol}: {(last.status if last else '') or 'no answer'} " \
                          f"{(last.status_message if last else '') or ''}".strip()
            plan.done(step, filled(orders), ok, failure)
    finally:
        desk.book.release(group.id)  # every leg placed, or never to be
    j.record_group(group.id, desk.user_id, strategy_id=group.strategy_id, structure=group.structure,
                   state=plan.state, detail=plan.detail)
    if plan.state == "needs_attention":
        log.error("group %s NEEDS ATTENTION: %s", group.id, plan.detail, extra={"user_id": desk.user_id})
        what = "rollback" if group.intent == "entry" else "exit"
        await alert(desk.bus, desk.user_id, "needs_attention",
                    f"{group.structure} on {group.underlying}: {what} could not complete",
                    f"{group.strategy_id}: {plan.reason or plan.detail} — check the positions and close what is left",
                    severity="critical", key=f"needs_attention:{group.id}", clock=desk.exchange)
    if plan.state != "completed":
        await legs_ended(desk, group, plan.code, plan.reason)
    return plan.state


async def legs_ended(desk: Desk, group: SignalGroup, code: str, reason: str) -> None:
    """A group that did not complete: each leg's strategy hears it with the leg's position now."""
    for i, leg in enumerate(group.legs):
        await desk.outcomes.emit(f"rolled_back:{group.id}:{i}", kind="rolled_back", strategy_id=group.strategy_id,
                                 group_id=group.id, order_kind=group.intent, exchange=leg.exchange.value,
                                 tradingsymbol=leg.tradingsymbol, instrument_token=leg.instrument_token,
                                 transaction_type=leg.transaction_type, quantity=leg.quantity, code=code,
                                 reason=reason)

