"""Protective orders of filled entries: a stop-loss and a target once the signal's entry orders are
final, one cancelling the other when it fills."""

from __future__ import annotations

import logging

import msgspec

from execution_worker import placing
from execution_worker.engine import Desk
from shared.messages import Signal
from shared.trading import planning
from shared.trading.order import Applied, Order, OrderState

log = logging.getLogger("kta.execution")


async def on_change(desk: Desk, order: Order, applied: Applied) -> None:
    if not order.is_terminal:
        return
    if order.kind == "entry" and order.signal_id:
        entries = [o for o in desk.book.of_signal(order.signal_id) if o.kind == "entry"]
        if not all(o.is_terminal for o in entries):
            return
        sig = signal_of(desk, order.signal_id)
        filled = sum(o.filled_quantity for o in entries)
        if sig is not None and filled and (sig.stop_loss or sig.target):
            inst = desk.inst(sig.exchange.value, sig.tradingsymbol)
            for req in planning.protective_requests(sig, filled, inst, desk.sl_slippage_pct):
                await placing.place(desk, req, sig.strategy_id)
    elif order.is_protective and order.state is OrderState.COMPLETE:  # one-cancels-other
        for sibling in desk.book.of_signal(order.signal_id):
            if sibling.is_protective and sibling.tag != order.tag:
                await placing.cancel(desk, sibling, f"{order.kind} {order.order_id} filled")


def signal_of(desk: Desk, signal_id: str) -> Signal | None:
    rec = desk.journal.signal(signal_id)
    if rec is None or rec.get("type") == "signal_group":
        return None
    try:
        return msgspec.json.decode(rec["payload"], type=Signal)
    except (msgspec.DecodeError, KeyError):
        return None
