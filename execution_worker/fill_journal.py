"""The fills of kta's orders, from the broker's trade book (or, for an order of a closed day the broker no longer
holds, its final report) into the journal once each, the position book, the order and its strategy."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from execution_worker import closed_day
from shared.kite import errors
from shared.kite.models import Trade
from shared.messages import to_paise, to_rupees
from shared.trading.order import Fill, Order

if TYPE_CHECKING:
    from execution_worker.engine import Desk

log = logging.getLogger("kta.execution")


async def journal_fills(desk: Desk, order: Order, known: list[Trade] | None = None) -> None:
    """Every fill of the order from the broker's trade book, journaled once, into the tracker.
    ``known`` trades are used when they account for the whole filled quantity."""
    if known is None or sum(t.quantity for t in known) < order.filled_quantity:
        known = await _trades_or_report(desk, order)
    await journal_trades(desk, order, known)


async def journal_trades(desk: Desk, order: Order, trades: list[Trade]) -> None:
    """``trades`` of the order not journaled yet: journaled, into the tracker, applied to the order, told
    to its strategy."""
    fresh = False
    for t in trades:
        if t.trade_id in order.trade_ids:
            continue
        price = to_paise(t.average_price)
        booked = desk.journal.record_trade(
            desk.user_id, trade_id=t.trade_id, order_id=t.order_id, exchange=t.exchange,
            tradingsymbol=t.tradingsymbol, instrument_token=t.instrument_token,
            transaction_type=t.transaction_type, quantity=t.quantity, price=price,
            fill_timestamp=t.fill_timestamp or "", product=t.product, strategy_id=order.strategy_id,
            signal_id=order.signal_id, group_id=order.group_id)
        # the position first: once the order shows the fill (record awaits its publish), an exit clearing
        # the position reads what is held — the other way round it read the position before the stop's fill
        # and sold it again (soak seed 11: an exit took TCS 0 -> -8 after its stop had filled). A trade the
        # journal already had is in the tracker already (built from the journal): a kill between the trade's
        # commit and the order's left the order without it, and counting it again made SBIN -8 read -16
        if booked:
            desk.tracker.on_fill(strategy_id=order.strategy_id, exchange=t.exchange, tradingsymbol=t.tradingsymbol,
                                 transaction_type=t.transaction_type, quantity=t.quantity, price=price,
                                 instrument_token=t.instrument_token, product=t.product,
                                 timestamp=t.fill_timestamp or "")
        await desk.record(order, Fill(trade_id=t.trade_id, quantity=t.quantity, price=price,
                                      timestamp=t.fill_timestamp or "", ts=time.time_ns()), notify=False)
        await desk.outcomes.emit(
            f"fill:{t.order_id}:{t.trade_id}", kind="protective_fill" if order.is_protective else "filled",
            strategy_id=order.strategy_id, signal_id=order.signal_id, group_id=order.group_id,
            order_kind=order.kind, exchange=t.exchange, tradingsymbol=t.tradingsymbol,
            instrument_token=t.instrument_token, transaction_type=t.transaction_type, quantity=t.quantity,
            price=price, trade_id=t.trade_id)
        fresh = True
    if fresh:
        if desk.on_fills is not None:
            await desk.on_fills(desk)
        await desk.feed_pnl("fill")


async def _trades_or_report(desk: Desk, order: Order) -> list[Trade]:
    """The order's trades; an order of a closed day the broker no longer holds: its own report (closed_day.py)."""
    try:
        trades = await desk.trades_of(order.order_id)
    except errors.InputException:  # "Couldn't find that `order_id`"
        if not desk.of_a_closed_day(order):
            raise
        trades = []
    if not desk.of_a_closed_day(order):
        return trades
    journaled = sum(t["quantity"] * t["price"] for t in desk.journal.trades_of_order(order.order_id)
                    if t["trade_id"] in order.trade_ids)
    if not (report := closed_day.missing_fills(order, trades, journaled)):
        return trades
    log.warning("order %s of %s: the broker's books no longer hold its fills; %s journaled from its final "
                "report (average %s)", order.order_id, order.day,
                ", ".join(f"{t.quantity} at {t.average_price}" for t in report), to_rupees(order.average_price),
                extra={"user_id": desk.user_id})
    return [*trades, *report]
