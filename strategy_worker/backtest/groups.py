"""Multi-leg option groups in a backtest, placed as the execution worker places them.

A SignalGroup meets the live hedge rules (``shared/trading/hedge.HedgeValidator``: no naked short, spreads
and condors balanced) and the live ``RiskManager`` with the live context (positions, working orders, last
prices, the net greeks of its underlying priced at backtest time). Accepted, its legs go through the live
placement plan (``shared/trading/group.GroupPlacement``): one leg at a time, hedges first; a leg that
does not fill ends the entry and exactly what filled is closed again, short legs first — the group ends
``completed``, ``rolled_back`` or ``needs_attention`` and each leg's strategy hears it as live does.

A leg is the live order (``planning.leg_request``, freeze-sliced; ``planning.marketable`` on stock
options) filled by the shared fill model at its contract's price **in the minute the group is placed**:
its bar's open ± the spread. A contract with no bar in that minute did not trade then: its order finds
no one within the execution worker's wait, is cancelled, and the group rolls back (the same rule for
rollback and exit legs, which then leave the group ``needs_attention``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.messages import OrderType, SignalGroup, StrategyOutcome
from shared.trading.greeks import greeks_inputs, net_greeks
from shared.trading.group import GroupPlacement, Step
from shared.trading.hedge import HedgeValidator
from shared.trading.order import OrderState
from shared.trading.planning import leg_request, lot_of, marketable, tick_paise
from shared.trading.positions import signed
from shared.trading.risk_context import RiskContext, context_from

if TYPE_CHECKING:
    from strategy_worker.backtest.desk import Desk

NO_TRADE = "no trade in the contract while the group waited for it"
SIGNAL_KINDS = ("entry", "exit")  # a leg order of these kinds that ends unfilled is told to the strategy


def place_group(desk: Desk, group: SignalGroup) -> list[StrategyOutcome]:
    sid = group.strategy_id
    ok, reason = HedgeValidator().validate(group)  # live allows no naked short either
    verdict = None
    if ok:
        verdict = desk.risk.validate_signal(group, group_context(desk, group))
        ok, reason = verdict.ok, verdict.reason
    if not ok:
        code = verdict.code if verdict else "HEDGE_MISMATCH"
        desk.rec.refusal(desk.now, group, code, reason)
        return [desk.outcome(sid, "refused", group_id=group.id, order_kind=group.intent, code=code, reason=reason)]
    out = [desk.outcome(sid, "accepted", group_id=group.id, order_kind=group.intent)]
    plan = GroupPlacement(group, verdict.quantities if group.intent == "exit" else ())
    while (step := plan.next()) is not None:
        filled, failure = _leg(desk, group, step, out)
        plan.done(step, filled, filled == step.leg.quantity, failure)
    desk.rec.group(desk.now, group, plan.state, plan.detail)
    if plan.state != "completed":
        for leg in group.legs:
            out.append(desk.outcome(
                sid, "rolled_back", group_id=group.id, token=leg.instrument_token, order_kind=group.intent,
                transaction_type=leg.transaction_type, quantity=leg.quantity, code=plan.code, reason=plan.reason))
    return out


def group_context(desk: Desk, group: SignalGroup) -> RiskContext:
    """What the execution worker's ``judge`` gives risk for a group, from the backtest's books and prices."""
    lines = [(f"{leg.exchange.value}:{leg.tradingsymbol}", signed(leg.transaction_type, leg.quantity))
             for leg in group.legs]
    keys = [k for k, _ in lines]
    held = desk.tracker.positions()
    underlying, _, _, greek_keys = greeks_inputs(desk.by_key, held, lines)
    exiting = group.intent == "exit"
    prices = {} if exiting else {k: p for k in {*keys, *greek_keys}
                                 if (inst := desk.by_key.get(k)) and (p := desk.paise(inst.instrument_token))}
    greeks = net_greeks(desk.by_key, held, lines, prices, now=desk.now) if underlying and not exiting else None
    return context_from(desk.tracker, desk.book, group, prices=prices,
                        lot_sizes={k: lot_of(desk.by_key.get(k)) for k in keys},
                        greeks=greeks.held if greeks else None, signal_greeks=greeks.added if greeks else (0.0, 0.0),
                        underlying=underlying, greeks_priced=greeks.priced if greeks else True)


def _leg(desk: Desk, group: SignalGroup, step: Step, out: list[StrategyOutcome]) -> tuple[int, str]:
    """One leg's orders (its freeze slices) placed and filled, or cancelled unfilled: (units filled, why not)."""
    leg, sid = step.leg, group.strategy_id
    token = leg.instrument_token
    inst = desk.instruments.get(token)
    price = desk.paise(token)
    filled = 0
    for req in leg_request(desk.user_id, group.id, leg, step.index, step.kind, -1, inst):
        req = marketable(req, inst, price)
        order = desk.order(req, sid, OrderState.OPEN)
        side = req.transaction_type.value
        if inst is None or not price or token not in desk.traded:
            desk.rec.order(desk.now, req, "OPEN", 0, sid)
            desk.cancel(order, NO_TRADE)
            if step.kind in SIGNAL_KINDS:
                out.append(desk.outcome(sid, "cancelled", group_id=group.id, token=token, order_kind=step.kind,
                                        transaction_type=req.transaction_type, quantity=req.quantity,
                                        reason=NO_TRADE))
            return filled, f"leg {leg.tradingsymbol}: CANCELLED {NO_TRADE}"
        fill = desk.fills.market(side, price, tick_paise(inst), band=desk.band(inst))
        if req.order_type is OrderType.LIMIT:  # a stock option's "market" order: never beyond its limit
            fill = min(fill, req.price) if side == "BUY" else max(fill, req.price)
        desk.complete(order, fill)
        desk.rec.order(desk.now, req, "COMPLETE", fill, sid)
        out.append(desk.fill(sid, "", step.kind, inst, side, req.quantity, fill, req.product.value, "filled",
                             group_id=group.id))
        filled += req.quantity
    return filled, ""
