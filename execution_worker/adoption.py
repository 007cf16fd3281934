"""Orders at the broker with kta's tag that the journal lost (a crash between placing and recording): whose
they are, read back from the tag — the signal it was placed for, or the protection that placed a stop."""

from __future__ import annotations

from execution_worker.journal import Journal
from shared.kite.models import Order as KiteOrder
from shared.messages import OrderRequest, OrderType, Product, TransactionType, Variety, to_paise
from shared.trading import planning


def request_for(journal: Journal, user_id: str, kite_order: KiteOrder) -> tuple[OrderRequest, str]:
    """The request kta placed ``kite_order`` for, as far as its tag and the journal tell, and the strategy id
    (kind "adopted" and no strategy when neither a signal nor a protection claims it)."""
    kind, leg, _ = planning.tag_fields(kite_order.tag)
    signal = journal.signal_by_tag(user_id, kite_order.tag) or {}
    if not signal and kind == "stop_loss":  # a position's stop: its protection says whose
        signal = _protection_of(journal, user_id, kite_order.tag, leg)
    grouped = signal.get("type") == "signal_group"
    req = OrderRequest(user_id=user_id, exchange=kite_order.exchange, tradingsymbol=kite_order.tradingsymbol,
                       instrument_token=kite_order.instrument_token,
                       transaction_type=TransactionType(kite_order.transaction_type),
                       order_type=OrderType(kite_order.order_type), quantity=max(1, kite_order.quantity),
                       product=Product(kite_order.product), variety=Variety(kite_order.variety or "regular"),
                       price=to_paise(kite_order.price), trigger_price=to_paise(kite_order.trigger_price),
                       tag=kite_order.tag, kind=kind if signal else "adopted", leg_index=leg,
                       signal_id="" if grouped else signal.get("id", ""),
                       group_id=signal.get("id", "") if grouped else "")
    return req, signal.get("strategy_id", "")


def _protection_of(journal: Journal, user_id: str, tag: str, generation: int) -> dict:
    """The strategy (as a signal row's fields) whose protection placed the stop tagged ``tag``
    (``shared.trading.protection.stop_request``: origin ``protect|<key>|<generation>``)."""
    for p in journal.protections(user_id):
        for g in range(generation % 100, p.generation + 1, 100):
            if planning.make_tag(f"protect|{p.key}|{g}", "stop_loss", g, 0)[1:15] == tag[1:15]:
                return {"strategy_id": p.strategy_id, "id": p.signal_id}
    return {}
