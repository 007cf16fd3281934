"""Fills of an order whose trading day has closed. Kite's orders and trades are the day's only: once the broker
is in its next session, an order of the day before is "Couldn't find that `order_id`", its trades too. What its
own final report said — the filled quantity at its average price — is then all there is to journal; without it
the fills were owed for ever (never journaled, the position off the broker's, its protection held back by a
"closing" order that never closes: soak seed 19, a flatten completed at 15:29:07, read after the next open).

What is exact and what is not. The order's value is filled quantity × average price; the fills already journaled
(and any trades the broker still lists) are exact, so the rest is that value less theirs — not the average price
again, which is wrong whenever the part journaled before the close filled at other prices (an order walking the
book, or refilled after a move). That rest is spread over the missing quantity at two prices a paisa apart, so
the journal's value of the order is filled × average to the paisa. Approximate: (1) the average price itself —
Kite reports it in rupees, kta keeps it rounded to the paisa (kite_sim floors it), so the order's value is known
to within its filled quantity × half a paisa (kite_sim: under one paisa a unit); (2) the missing part becomes one
or two fills stamped with the order's last exchange time, not the broker's individual trades and their times."""

from __future__ import annotations

from shared.kite.models import Trade
from shared.messages import to_paise, to_rupees
from shared.trading.order import Order


def of_a_closed_day(order: Order, today: str) -> bool:
    """A final order of a trading day before ``today`` (the exchange's), with its average price known."""
    return order.is_terminal and bool(order.day) and order.day < today and order.average_price > 0


def missing_fills(order: Order, trades: list[Trade], journaled_value: int) -> list[Trade]:
    """The filled quantity neither journaled nor among ``trades``, as fills from the order's report: the value
    its average price leaves after ``journaled_value`` (paise: the order's journaled fills) and ``trades``' own,
    at one price or two a paisa apart (the higher first). Empty when nothing is missing."""
    fresh = [t for t in trades if t.trade_id not in order.trade_ids]
    missing = order.unjournaled - sum(t.quantity for t in fresh)
    if missing <= 0:
        return []
    value = (order.average_price * order.filled_quantity - journaled_value
             - sum(to_paise(t.average_price) * t.quantity for t in fresh))
    if value < missing:  # a report at odds with the fills journaled: its average price is all it says
        value = order.average_price * missing
    # the id names the price: a restart between the two parts journals only the one still missing
    return fills_worth(order, missing, value, "report:{order_id}:{price}")


def fills_worth(order: Order, quantity: int, value: int, trade_id: str) -> list[Trade]:
    """``quantity`` of ``order`` filled for ``value`` (paise), as fills at one price or two a paisa apart (the
    higher first), so their value is ``value`` to the paisa; ``trade_id`` is formatted with ``order_id`` and
    ``price``. Stamped with the order's last exchange time (else its day's close)."""
    price, odd = divmod(value, quantity)
    parts = [(odd, price + 1), (quantity - odd, price)]
    return [Trade(trade_id=trade_id.format(order_id=order.order_id, price=p), order_id=order.order_id,
                  exchange=order.exchange, tradingsymbol=order.tradingsymbol, instrument_token=order.instrument_token,
                  product=order.product, average_price=to_rupees(p), quantity=q,
                  transaction_type=order.transaction_type.value,
                  fill_timestamp=order.exchange_timestamp or f"{order.day} 15:30:00") for q, p in parts if q > 0]


def unheard_value(order: Order, quantity: int, journaled_value: int) -> int | None:
    """What ``quantity`` more of ``order`` filled for when the broker's record of it is gone with its day
    (crosscheck's unheard fills), beyond its journaled fills worth ``journaled_value``: the part its last
    report counted filled is worth what that report's average leaves after the journaled fills (exact, as
    ``missing_fills``); the part never reported, the report's average (approximate). None: no report to go by."""
    if order.average_price <= 0:
        return None
    reported = min(quantity, order.unjournaled)
    value = 0
    if reported:
        value = (order.average_price * order.filled_quantity - journaled_value) * reported // order.unjournaled
    if value <= 0:
        value, reported = 0, 0
    return value + order.average_price * (quantity - reported)
