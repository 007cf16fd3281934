"""A single-instrument signal: risk decides from the books, then the order(s) go to the broker."""

from __future__ import annotations

import logging
import time

from execution_worker import placing
from execution_worker.engine import Desk
from execution_worker.greeks import net_greeks
from execution_worker.journal import ACCEPTED, REFUSED
from shared import subjects
from shared.messages import OrderEvent, Signal, to_paise
from shared.trading import planning
from shared.trading.order import REFUSED as REFUSED_STATE
from shared.trading.positions import signed
from shared.trading.risk import context_from

log = logging.getLogger("kta.execution")


async def on_signal(desk: Desk, sig: Signal) -> None:
    decision = desk.journal.signal_decision(sig.id)
    if decision == REFUSED:
        return  # a redelivery of a refused signal: the decision stands
    inst = desk.inst(sig.exchange.value, sig.tradingsymbol)
    if decision is None:
        last = to_paise(inst.last_price) if inst and inst.last_price else 0
        underlying, greeks, added = ("", {}, (0.0, 0.0)) if sig.intent == "exit" else await desk_greeks(
            desk, [(f"{sig.exchange.value}:{sig.tradingsymbol}", signed(sig.transaction_type, sig.quantity))])
        ctx = context_from(desk.tracker, sig, open_orders=len(desk.book.working()),
                           lot_size=inst.lot_size if inst else 1, last_price=sig.price or last,
                           greeks=greeks, signal_greeks=added, underlying=underlying)
        verdict = desk.risk.validate_signal(sig, ctx)
        if not verdict.ok:
            desk.journal.record_signal(sig, REFUSED, verdict.reason, verdict.code)
            await refused(desk, sig, verdict.code, verdict.reason)
            return
        desk.journal.record_signal(sig, ACCEPTED)
    if sig.intent == "exit":
        for order in desk.book.working_for(sig.strategy_id, sig.exchange.value, sig.tradingsymbol,
                                           "stop_loss", "target"):
            await placing.cancel(desk, order, f"exit signal {sig.id}")
    for req in planning.signal_requests(sig, inst, desk.market_protection):
        await placing.place(desk, req, sig.strategy_id)
    await desk.outcomes.emit(f"accepted:{sig.id}", kind="accepted", **signal_fields(sig))


def signal_fields(sig: Signal) -> dict:
    return dict(strategy_id=sig.strategy_id, signal_id=sig.id, order_kind=sig.intent, exchange=sig.exchange.value,
                tradingsymbol=sig.tradingsymbol, instrument_token=sig.instrument_token,
                transaction_type=sig.transaction_type, quantity=sig.quantity)


async def desk_greeks(desk: Desk, legs: list[tuple[str, int]]):
    """Net option greeks of the legs' underlying held now, and what the legs add."""
    return await net_greeks(desk.client, desk.instruments, desk.tracker.positions(), legs)


async def refused(desk: Desk, sig: Signal, code: str, reason: str) -> None:
    ev = OrderEvent(user_id=desk.user_id, order_id="", signal_id=sig.id, kind=sig.intent, state=REFUSED_STATE,
                    status_message=f"{code}: {reason}", exchange=sig.exchange.value,
                    tradingsymbol=sig.tradingsymbol, instrument_token=sig.instrument_token,
                    transaction_type=sig.transaction_type, order_type=sig.order_type, product=sig.product,
                    quantity=sig.quantity, ts=time.time_ns())
    await desk.bus.js_publish(subjects.orders(desk.user_id), ev)
    await desk.outcomes.emit(f"refused:{sig.id}", kind="refused", code=code, reason=reason, **signal_fields(sig))
    log.info("signal %s refused: %s %s", sig.id, code, reason, extra={"user_id": desk.user_id})
