"""The pre-trade margin check: before a multi-leg group, and before an entry worth at least
``KTA_MARGIN_CHECK_ABOVE``, ask Kite what the basket needs (``POST /margins/basket``, with the spread
benefit and the open positions) and what the account has (``/user/margins``), and refuse, in rupees,
what the account cannot carry — so a group never fills its hedges to have its short rejected.

If Kite cannot answer the question, the order goes on (logged): the broker's own margin check still
stands behind it, and a group's rollback covers a leg it rejects."""

from __future__ import annotations

import logging

from execution_worker.engine import Desk
from shared.kite import errors
from shared.messages import OrderRequest
from shared.trading.margin import margin_orders, segment_of, shortfall

log = logging.getLogger("kta.execution")


async def refusal(desk: Desk, requests: list[OrderRequest]) -> str | None:
    """Why the account cannot carry ``requests`` now, or None (also when Kite cannot say)."""
    if not requests:
        return None
    prices = {k: p for r in requests if (p := desk.prices.known(k := f"{r.exchange.value}:{r.tradingsymbol}"))}
    try:
        basket = await desk.client.basket_order_margins(margin_orders(requests, prices), consider_positions=True)
        funds = await desk.client.margins(segment_of(requests[0].exchange.value))
    except errors.KiteError as e:
        log.warning("margin pre-check unavailable (%s): the broker's own check decides", e,
                    extra={"user_id": desk.user_id})
        return None
    return shortfall(basket.final.total, funds.net)


def worth_checking(desk: Desk, requests: list[OrderRequest]) -> bool:
    """An entry whose value (quantity × price, the last price for MARKET) reaches the threshold."""
    above = desk.margin_check_above
    if above <= 0:
        return True
    value = 0
    for r in requests:
        price = r.price or desk.prices.known(f"{r.exchange.value}:{r.tradingsymbol}") or 0
        value += r.quantity * price
    return value >= above
