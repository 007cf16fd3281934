"""Orders as kta sees them: deterministic tags, the order state machine, and the requests built
from signals (lots, tick-size rounding, market protection, freeze-quantity slices, stop-loss)."""

from __future__ import annotations

import hashlib
import logging

from shared.kite.models import Instrument
from shared.messages import (
    Leg,
    OrderRequest,
    OrderStatus,
    OrderType,
    Product,
    Signal,
    TransactionType,
    Validity,
    Variety,
)

log = logging.getLogger("kta.orders")

# Freeze quantities (units) of index derivatives; above them an order must be sliced.
FREEZE = {"NIFTY": 1800, "BANKNIFTY": 900, "FINNIFTY": 1800, "MIDCPNIFTY": 2800, "SENSEX": 1000, "BANKEX": 900}
KIND_CODE = {"entry": "E", "stop_loss": "S", "target": "T", "exit": "X", "rollback": "R", "flatten": "F",
             "adopted": "A"}

# kta's own states around Kite's statuses: SUBMITTING (request sent, no answer yet) and UNKNOWN
# (answer lost) are resolved by looking the tag up at the broker, never by retrying blindly.
SUBMITTING, UNKNOWN, FAILED, REFUSED = "SUBMITTING", "UNKNOWN", "FAILED", "REFUSED"
PLACED = "PLACED"  # the broker answered with an order id; its first status is yet to be read
S = OrderStatus
# Kite's statuses in the order an order lives them: submission, working (incl. modify / cancel in
# flight), final. An update may only move forward: a late WebSocket "OPEN PENDING" arriving after
# the order was read back as OPEN is stale and refused, never a regression.
_SUBMISSION = [S.PUT_ORDER_REQ_RECEIVED, S.AMO_REQ_RECEIVED, S.VALIDATION_PENDING, S.OPEN_PENDING]
_WORKING = {S.OPEN, S.TRIGGER_PENDING, S.MODIFY_VALIDATION_PENDING, S.MODIFY_PENDING, S.MODIFIED, S.NOT_MODIFIED,
            S.CANCEL_PENDING, S.UPDATE}
_FINAL = {S.COMPLETE, S.CANCELLED, S.REJECTED}
_ANY = {s.value for s in S}
_AFTER_SUBMISSION = {s.value for s in _WORKING | _FINAL}
TRANSITIONS: dict[str, set[str]] = {
    SUBMITTING: _ANY | {UNKNOWN, FAILED},
    PLACED: _ANY,
    UNKNOWN: _ANY | {FAILED},  # resolved by the tag lookup, whatever the broker says
    **{s.value: {t.value for t in _SUBMISSION[i + 1:]} | _AFTER_SUBMISSION for i, s in enumerate(_SUBMISSION)},
    **{s.value: _AFTER_SUBMISSION for s in _WORKING},
    S.COMPLETE.value: set(),  # final; a late partial update never regresses it
    S.CANCELLED.value: {S.COMPLETE.value},  # a fill after a cancel: the real world allows it
    S.REJECTED.value: set(),
    FAILED: _ANY,  # a "failed" submit that the broker turns out to have
}


def can_move(current: str, new: str) -> bool:
    """Whether the state machine accepts ``current → new`` (same state is a no-op, allowed)."""
    if not current or current == new:
        return True
    return new in TRANSITIONS.get(current, _ANY)


def is_terminal(state: str) -> bool:
    return state in (S.COMPLETE.value, S.CANCELLED.value, S.REJECTED.value, FAILED, REFUSED)


def make_tag(signal_id: str, kind: str, index: int = 0, slice_no: int = 0) -> str:
    """A Kite tag (≤ 20 alphanumerics) that is the same for the same signal, leg and slice, so a
    redelivered signal maps onto the orders it already placed."""
    digest = hashlib.sha1(signal_id.encode()).hexdigest()[:14]
    return f"K{digest}{KIND_CODE[kind]}{index % 100:02d}{slice_no % 100:02d}"


def is_kta_tag(tag: str | None) -> bool:
    return bool(tag) and len(tag) == 20 and tag[0] == "K" and tag[15] in KIND_CODE.values()


def round_to_tick(paise: int, tick_paise: int, side: TransactionType | None = None) -> int:
    """Onto the instrument's tick grid; a buy limit rounds down and a sell limit up when ``side``
    is given (never worse than asked), otherwise to the nearest tick."""
    if tick_paise <= 1:
        return paise
    if side is TransactionType.BUY:
        return paise // tick_paise * tick_paise
    if side is TransactionType.SELL:
        return -(-paise // tick_paise) * tick_paise
    return int(round(paise / tick_paise)) * tick_paise


def slices(quantity: int, lot_size: int, freeze: int) -> list[int]:
    """Split above the freeze quantity into slices that are multiples of the lot size."""
    if not freeze or quantity <= freeze:
        return [quantity]
    step = max(lot_size, freeze // lot_size * lot_size)
    out = [step] * (quantity // step)
    if quantity % step:
        out.append(quantity % step)
    return out


def tick_paise(inst: Instrument | None) -> int:
    return int(round((inst.tick_size if inst and inst.tick_size else 0.05) * 100))


def order_request(user_id: str, *, signal_id: str, kind: str, exchange, tradingsymbol: str, instrument_token: int,
                  side: TransactionType, quantity: int, product: Product, order_type: OrderType, price: int = 0,
                  trigger_price: int = 0, market_protection: int = -1, index: int = 0, slice_no: int = 0,
                  group_id: str = "", inst: Instrument | None = None) -> OrderRequest:
    tp = tick_paise(inst)
    if order_type in (OrderType.LIMIT, OrderType.SL):
        price = round_to_tick(price, tp, side)
    if order_type in (OrderType.SL, OrderType.SL_M):
        trigger_price = round_to_tick(trigger_price, tp)
    return OrderRequest(
        user_id=user_id, variety=Variety.REGULAR, exchange=exchange, tradingsymbol=tradingsymbol,
        instrument_token=instrument_token, transaction_type=side, order_type=order_type, quantity=quantity,
        product=product, price=price if order_type in (OrderType.LIMIT, OrderType.SL) else 0,
        trigger_price=trigger_price, validity=Validity.DAY,
        market_protection=market_protection if order_type in (OrderType.MARKET, OrderType.SL_M) else 0,
        tag=make_tag(signal_id or group_id, kind, index, slice_no), signal_id=signal_id, group_id=group_id,
        leg_index=index, kind=kind)


def signal_requests(sig: Signal, inst: Instrument | None, market_protection: int, kind: str | None = None
                    ) -> list[OrderRequest]:
    """The entry (or exit) order(s) of a single-instrument signal, sliced at the freeze quantity."""
    freeze = FREEZE.get(inst.name, 0) if inst and inst.instrument_type in ("FUT", "CE", "PE") else 0
    lot = inst.lot_size if inst and inst.lot_size else 1
    return [order_request(sig.user_id, signal_id=sig.id, kind=kind or sig.intent, exchange=sig.exchange,
                          tradingsymbol=sig.tradingsymbol, instrument_token=sig.instrument_token,
                          side=sig.transaction_type, quantity=q, product=sig.product, order_type=sig.order_type,
                          price=sig.price, market_protection=market_protection, slice_no=i, inst=inst)
            for i, q in enumerate(slices(sig.quantity, lot, freeze))]


def protective_requests(sig: Signal, filled: int, inst: Instrument | None, slippage_pct: float) -> list[OrderRequest]:
    """After an entry fills: the stop-loss as an SL order (trigger = stop, limit = trigger ± slippage,
    as the original design places it) and the target as a LIMIT, both closing ``filled`` units."""
    out = []
    exit_side = sig.transaction_type.opposite
    if sig.stop_loss:
        slip = int(sig.stop_loss * slippage_pct / 100)
        limit = sig.stop_loss - slip if exit_side is TransactionType.SELL else sig.stop_loss + slip
        out.append(order_request(sig.user_id, signal_id=sig.id, kind="stop_loss", exchange=sig.exchange,
                                 tradingsymbol=sig.tradingsymbol, instrument_token=sig.instrument_token,
                                 side=exit_side, quantity=filled, product=sig.product, order_type=OrderType.SL,
                                 price=limit, trigger_price=sig.stop_loss, inst=inst))
    if sig.target:
        out.append(order_request(sig.user_id, signal_id=sig.id, kind="target", exchange=sig.exchange,
                                 tradingsymbol=sig.tradingsymbol, instrument_token=sig.instrument_token,
                                 side=exit_side, quantity=filled, product=sig.product, order_type=OrderType.LIMIT,
                                 price=sig.target, inst=inst))
    return out


def leg_request(user_id: str, group_id: str, leg: Leg, index: int, kind: str, market_protection: int,
                inst: Instrument | None = None, side: TransactionType | None = None,
                quantity: int | None = None) -> OrderRequest:
    return order_request(user_id, signal_id="", group_id=group_id, kind=kind, exchange=leg.exchange,
                         tradingsymbol=leg.tradingsymbol, instrument_token=leg.instrument_token,
                         side=side or leg.transaction_type, quantity=quantity or leg.quantity, product=leg.product,
                         order_type=leg.order_type, price=leg.price, market_protection=market_protection,
                         index=index, inst=inst)
