"""Reconciliation: the broker's order book is the truth of what exists, the journal of why.

Runs at start-up, every 30 s while live, after every ticker reconnect (Kite does not replay order
updates missed while disconnected) and a final time on stop."""

from __future__ import annotations

import logging
import time

import msgspec

from execution_worker import placing
from execution_worker.engine import Desk
from shared import metrics
from shared.kite import errors
from shared.kite.models import Order as KiteOrder
from shared.trading.order import NOT_FOUND, BrokerUpdate, OrderState, SubmitFailed

log = logging.getLogger("kta.reconcile")
# a working order gone from the broker's book with its day: what filled of it after kta last heard is unknown until the
# positions cross-check finds it in the broker's positions (crosscheck.CrossCheck._unheard)
EXPIRED_UNLISTED = "no longer in the broker's order book: expired at the end of its day"


class ReconcileResult(msgspec.Struct, kw_only=True):
    matched: int = 0
    mismatched: int = 0
    adopted: int = 0
    unknown_resolved: int = 0
    cancelled: int = 0
    external: int = 0
    expired: int = 0
    errors: list[str] = msgspec.field(default_factory=list)


async def reconcile(desk: Desk, cancel_open: bool = False) -> ReconcileResult:
    started = time.monotonic()
    # only an order the desk already had an id for when the read began can be missing from what it returns:
    # one placed while the read was in flight (or while another pass's was) is simply too new for it
    placed = {order.order_id for order in desk.book.working() if order.order_id}
    try:
        book = await desk.client.orders()
    except errors.KiteError as e:
        return ReconcileResult(errors=[f"orders: {e}"])
    return await fold(desk, book, placed, started, cancel_open)


async def fold(desk: Desk, book: list[KiteOrder], placed: set[str], started: float,
               cancel_open: bool = False) -> ReconcileResult:
    """Fold one read of the broker's order book into the desk. ``placed``: the ids of the working
    orders the desk knew before that read began (``started``, monotonic)."""
    result = ReconcileResult()
    by_tag = {order.tag: order for order in book if order.tag}
    trades = None  # the day's trade book, read once if any order has fills the journal lacks
    if any(order.filled_quantity > getattr(desk.book.find(order.order_id, order.tag), "fill_quantity", 0)
           for order in book):
        try:
            trades = {}
            for t in await desk.client.trades():
                trades.setdefault(t.order_id, []).append(t)
        except errors.KiteError as e:
            result.errors.append(f"trades: {e}")
            trades = None  # each order reads its own
    for order in book:
        known = desk.book.find(order.order_id, order.tag)
        before = (known.state, known.filled_quantity) if known else None
        try:
            owned = await desk.on_broker(order, trades)
        except errors.KiteError as e:
            result.errors.append(f"{order.order_id}: {e}")
            continue
        if not owned:
            result.external += 1
        elif known is None:
            result.adopted += 1
        elif before == (known.state, known.filled_quantity):
            result.matched += 1
        else:
            result.mismatched += 1
    await _unlisted(desk, {order.order_id for order in book}, placed, result)
    for order in desk.book.working():  # lost submits: placed or not?
        if order.state in (OrderState.SUBMITTING, OrderState.UNKNOWN) and not order.order_id \
                and order.tag not in desk.in_flight:  # a submit still awaiting its answer is not lost
            if by_tag.get(order.tag) is None:
                await desk.record(order, SubmitFailed(reason="not found at the broker", code=NOT_FOUND))
            result.unknown_resolved += 1
    if cancel_open:
        for order in desk.book.working():
            if order.order_id or order.state is OrderState.HELD:
                await placing.cancel(desk, order, "stop: cancel open orders")
                result.cancelled += 1
    if not result.errors:
        desk.reconciled_at = started  # what it read is the broker's book as of then, or later
    if result.mismatched:
        metrics.RECONCILE_MISMATCHES.inc(result.mismatched)
    log.info("reconciled %s", msgspec.to_builtins(result), extra={"user_id": desk.user_id})
    return result


async def _unlisted(desk: Desk, listed: set[str], placed: set[str], result: ReconcileResult) -> None:
    """A working order the broker's day book no longer lists, in two reads in a row that both began
    after it was placed, ended with its day: Kite's order book holds only the current day, and the
    exchange cancels what is still open at the close. Kept working, it would hold kta's protection
    and limits on an order that can never fill. (Two passes whose reads began before a stop was
    placed — the loop's and a reconnect's — once 'expired' a live stop: protection placed a second.)"""
    missing = {}
    for order in desk.book.working():
        if order.order_id in placed and order.order_id not in listed and order.tag not in desk.in_flight:
            missing[order.tag] = desk.unlisted.get(order.tag, 0) + 1
            if missing[order.tag] >= 2:
                del missing[order.tag]
                log.warning("order %s (%s) is no longer in the broker's order book: expired with its day",
                            order.order_id, order.tag, extra={"user_id": desk.user_id})
                await desk.record(order, BrokerUpdate(order_id=order.order_id, state=OrderState.CANCELLED,
                                                      status="CANCELLED", status_message=EXPIRED_UNLISTED,
                                                      ts=time.time_ns()))
                result.expired += 1
    desk.unlisted = missing
