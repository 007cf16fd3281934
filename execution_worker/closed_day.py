"""Fills of an order whose trading day has closed. Kite's orders and trades are the day's only: once the broker
is in its next session, an order of the day before is "Couldn't find that `order_id`", its trades too. What its
own final report said — the filled quantity at its average price — is then all there is to journal; without it
the fills were owed for ever (never journaled, the position off the broker's, its protection held back by a
"closing" order that never closes: soak seed 19, a flatten completed at 15:29:07, read after the next open)."""

from __future__ import annotations

from shared.kite.models import Trade
from shared.messages import to_rupees
from shared.trading.order import Order


def of_a_closed_day(order: Order, today: str) -> bool:
    """A final order of a trading day before ``today`` (the exchange's), with its average price known."""
    return order.is_terminal and bool(order.day) and order.day < today and order.average_price > 0


def missing_fill(order: Order, trades: list[Trade]) -> Trade | None:
    """The filled quantity neither journaled nor among ``trades``, as one fill from the order's report (its average
    price, stamped with its exchange time: its day); None when nothing is missing."""
    missing = order.unjournaled - sum(t.quantity for t in trades if t.trade_id not in order.trade_ids)
    if missing <= 0:
        return None
    return Trade(trade_id=f"report:{order.order_id}", order_id=order.order_id, exchange=order.exchange,
                 tradingsymbol=order.tradingsymbol, instrument_token=order.instrument_token, product=order.product,
                 average_price=to_rupees(order.average_price), quantity=missing,
                 transaction_type=order.transaction_type.value,
                 fill_timestamp=order.exchange_timestamp or f"{order.day} 15:30:00")
