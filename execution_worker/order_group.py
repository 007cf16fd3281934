"""Multi-leg option groups placed atomically: hedges first, then short legs; on any reject, partial
fill or timeout, cancel what is open and square off what filled (shorts before their hedges),
leaving the account as it was. Every step is journaled; the group ends completed, rolled_back or
needs_attention (which alerts)."""

from __future__ import annotations

import asyncio
import logging
import time

from execution_worker import orders as o
from execution_worker.engine import Desk
from execution_worker.hedge import HedgeValidator, closing_legs, closing_order, entry_order
from execution_worker.journal import ACCEPTED, REFUSED
from execution_worker.positions import signed
from execution_worker.risk import context_from
from shared.kite import errors
from shared.messages import Leg, OrderStatus, SignalGroup

log = logging.getLogger("kta.order_group")
COMPLETE = OrderStatus.COMPLETE.value


async def _wait_terminal(desk: Desk, tags: list[str], timeout: float) -> list[dict]:
    """Until every order is terminal or the timeout passes; returns the rows as they stand."""
    deadline = time.monotonic() + timeout

    def rows() -> list[dict]:
        return [desk.journal.order_by_tag(t) for t in tags]

    while True:
        current = rows()
        if all(r and o.is_terminal(r.get("status") or r.get("state") or "") for r in current):
            return current
        left = deadline - time.monotonic()
        if left <= 0:
            return current
        for r in current:  # the broker's book is the truth; updates may be late
            if r and r.get("order_id") and not o.is_terminal(r.get("status") or ""):
                try:
                    history = await desk.client.order_history(r["order_id"])
                except errors.KiteError as e:  # a 429 or a blip: the next round asks again
                    log.info("order %s not read back: %s", r["order_id"], e)
                    continue
                if history:
                    await desk.apply(history[-1])
        async with desk.order_changed:
            try:
                await asyncio.wait_for(desk.order_changed.wait(), min(0.25, max(0.01, left)))
            except asyncio.TimeoutError:
                pass


async def _place_legs(desk: Desk, group: SignalGroup, legs: list[Leg], kind: str, offset: int,
                      timeout: float, reverse: bool = False) -> tuple[list[dict], bool]:
    tags = []
    for i, leg in enumerate(legs):
        inst = desk.inst(leg.exchange.value, leg.tradingsymbol)
        req = o.leg_request(desk.user_id, group.id, leg, offset + i, kind, desk.market_protection, inst)
        tags.append(req.tag)
        await desk.place(req, group.strategy_id)
    rows = await _wait_terminal(desk, tags, timeout)
    ok = all(r and r.get("status") == COMPLETE and r.get("filled_quantity") == r.get("quantity") for r in rows)
    return rows, ok


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
            _, greeks, added = ("", {}, (0.0, 0.0)) if group.intent == "exit" else await desk.greeks(
                [(f"{leg.exchange.value}:{leg.tradingsymbol}", signed(leg.transaction_type, leg.quantity))
                 for leg in group.legs])
            ctx = context_from(desk.tracker, group, open_orders=len(j.open_orders(desk.user_id)),
                               underlying=group.underlying, greeks=greeks, signal_greeks=added)
            verdict = desk.risk.validate_signal(group, ctx)
            ok, reason = verdict.ok, verdict.reason
        if not ok:
            code = verdict.code if verdict else "HEDGE_MISMATCH"
            j.record_signal(group, REFUSED, reason, code)
            if not verdict:
                j.record_risk_event(desk.user_id, code=code, message=reason, signal_id=group.id)
            log.warning("group %s refused: %s", group.id, reason)
            return "refused"
        j.record_signal(group, ACCEPTED)
    j.record_group(group.id, desk.user_id, strategy_id=group.strategy_id, structure=group.structure, state="placing")
    if group.intent == "exit":
        rows, ok = await _place_legs(desk, group, closing_order(group.legs), "exit", 0, timeout)
        state = "completed" if ok else "needs_attention"
        j.record_group(group.id, desk.user_id, strategy_id=group.strategy_id, structure=group.structure,
                       state=state, detail="" if ok else "exit legs did not all fill")
        return state
    ordered = entry_order(group.legs)
    filled: list[tuple[Leg, int]] = []
    failure = ""
    for i, leg in enumerate(ordered):  # one leg at a time: hedges are in before any short is sold
        rows, ok = await _place_legs(desk, group, [leg], "entry", i, timeout)
        row = rows[0]
        done = (row or {}).get("filled_quantity") or 0
        if done:
            filled.append((leg, done))
        if not ok:
            if row and not o.is_terminal(row.get("status") or ""):
                await desk.cancel(row)
                rows = await _wait_terminal(desk, [row["tag"]], timeout)
                done = (rows[0] or {}).get("filled_quantity") or 0
                if done and (not filled or filled[-1][0] is not leg):
                    filled.append((leg, done))
                elif filled and filled[-1][0] is leg:
                    filled[-1] = (leg, done)
            failure = f"leg {leg.tradingsymbol}: {(row or {}).get('status') or 'no answer'} " \
                      f"{(row or {}).get('status_message') or ''}".strip()
            break
    if not failure:
        j.record_group(group.id, desk.user_id, strategy_id=group.strategy_id, structure=group.structure,
                       state="completed")
        return "completed"
    # roll back: square off exactly what filled, short legs before their hedges
    log.warning("group %s failed (%s): rolling back %d filled legs", group.id, failure, len(filled))
    done_legs = [Leg(**{**_leg_fields(leg), "quantity": qty}) for leg, qty in filled]
    back = closing_legs(done_legs)
    ok = True
    for k, leg in enumerate(back):
        _, leg_ok = await _place_legs(desk, group, [leg], "rollback", 50 + k, timeout)
        ok = ok and leg_ok
    state = "rolled_back" if ok else "needs_attention"
    j.record_group(group.id, desk.user_id, strategy_id=group.strategy_id, structure=group.structure, state=state,
                   detail=failure if ok else f"{failure}; rollback incomplete: check positions")
    if not ok:
        log.error("group %s NEEDS ATTENTION: rollback incomplete", group.id, extra={"user_id": desk.user_id})
    return state


def _leg_fields(leg: Leg) -> dict:
    return {f: getattr(leg, f) for f in leg.__struct_fields__}

