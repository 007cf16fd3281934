"""The pre-trade margin check's rule, as pure functions: Kite's margin request body for kta's orders,
and the refusal a trader reads when the basket needs more than the account has (in rupees)."""

from __future__ import annotations

from collections.abc import Iterable

from shared.messages import OrderRequest, OrderType, format_inr, to_paise, to_rupees

CODE = "INSUFFICIENT_MARGIN"


def margin_orders(requests: Iterable[OrderRequest], prices: dict[str, int] | None = None) -> list[dict]:
    """``POST /margins/basket``'s JSON body for ``requests`` (prices in paise; a MARKET order is valued at
    ``prices["EXCHANGE:SYMBOL"]`` when known, as Kite values it at the last price)."""
    prices = prices or {}
    body = []
    for r in requests:
        key = f"{r.exchange.value}:{r.tradingsymbol}"
        price = r.price if r.order_type in (OrderType.LIMIT, OrderType.SL) else prices.get(key, 0)
        body.append({"exchange": r.exchange.value, "tradingsymbol": r.tradingsymbol,
                     "transaction_type": r.transaction_type.value, "variety": r.variety.value,
                     "product": r.product.value, "order_type": r.order_type.value, "quantity": r.quantity,
                     "price": float(to_rupees(price)) if price else 0,
                     "trigger_price": float(to_rupees(r.trigger_price or 0))})
    return body


def segment_of(exchange: str) -> str:
    """The funds segment an exchange's orders draw on (Kite's ``/user/margins/{segment}``)."""
    return "commodity" if exchange in ("MCX", "NCO") else "equity"


def shortfall(required: float, available: float) -> str | None:
    """The refusal (rupee floats, as Kite reports margins) or None when the account can carry it."""
    need, have = to_paise(required), to_paise(available)
    if need <= have:
        return None
    return (f"needs {format_inr(need)} of margin, {format_inr(have)} available "
            f"(short by {format_inr(need - have)}): nothing was placed")
