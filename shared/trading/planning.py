"""Order planning: the requests kta sends, built the same way on every path (entries, legs,
rollbacks, exits, protective orders, flattens, expiry square-offs, manual orders): deterministic
tags, lots, tick-size rounding, market protection, freeze-quantity slices, and no MARKET order on a
stock option (Kite blocks them: a LIMIT at a protection band instead). Pure: no broker I/O."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable

import msgspec

from shared.kite.models import Instrument
from shared.messages import (
    Exchange,
    Leg,
    OrderRequest,
    OrderType,
    Position,
    Product,
    Signal,
    TransactionType,
    Validity,
    Variety,
)

# Freeze quantities (units) of index derivatives; above them an order must be sliced.
FREEZE = {"NIFTY": 1800, "BANKNIFTY": 900, "FINNIFTY": 1800, "MIDCPNIFTY": 2800, "SENSEX": 1000, "BANKEX": 900}
INDEX_UNDERLYINGS = frozenset({"NIFTY", "BANKNIFTY", "FINNIFTY", "MIDCPNIFTY", "NIFTYNXT50", "SENSEX", "BANKEX"})
KIND_CODE = {"entry": "E", "stop_loss": "S", "target": "T", "exit": "X", "rollback": "R", "flatten": "F",
             "adopted": "A", "manual": "M"}
CODE_KIND = {v: k for k, v in KIND_CODE.items()}
STOCK_OPTION_BAND_PCT = 3.0  # a stock option "market" order: LIMIT this far through the last price


def make_tag(origin: str, kind: str, index: int = 0, slice_no: int = 0) -> str:
    """A Kite tag (20 alphanumerics) that is the same for the same origin (signal, group, flatten,
    protection), kind, leg and slice, so a redelivered signal maps onto the orders it already placed."""
    return f"K{_digest(origin)}{KIND_CODE[kind]}{index % 100:02d}{slice_no % 100:02d}"


@functools.lru_cache(maxsize=1024)  # a position's protection asks with the same origin for every stop it places
def _digest(origin: str) -> str:
    return hashlib.sha1(origin.encode()).hexdigest()[:14]


def is_kta_tag(tag: str | None) -> bool:
    return bool(tag) and len(tag) == 20 and tag[0] == "K" and tag[15] in CODE_KIND


def tag_fields(tag: str) -> tuple[str, int, int]:
    """(kind, leg, slice) a kta tag carries."""
    return CODE_KIND[tag[15]], int(tag[16:18]), int(tag[18:20])


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


def freeze_of(inst: Instrument | None) -> int:
    return FREEZE.get(inst.name, 0) if inst and inst.instrument_type in ("FUT", "CE", "PE") else 0


def lot_of(inst: Instrument | None) -> int:
    return inst.lot_size if inst and inst.lot_size else 1


def is_stock_option(inst: Instrument | None) -> bool:
    return inst is not None and inst.instrument_type in ("CE", "PE") and inst.name not in INDEX_UNDERLYINGS


def order_request(user_id: str, *, signal_id: str = "", kind: str, exchange, tradingsymbol: str,
                  instrument_token: int, side: TransactionType, quantity: int, product, order_type: OrderType,
                  price: int = 0, trigger_price: int = 0, market_protection: int = -1, index: int = 0,
                  slice_no: int = 0, group_id: str = "", origin: str = "", inst: Instrument | None = None
                  ) -> OrderRequest:
    tp = tick_paise(inst)
    if order_type in (OrderType.LIMIT, OrderType.SL):
        price = round_to_tick(price, tp, side)
    if order_type in (OrderType.SL, OrderType.SL_M):
        trigger_price = round_to_tick(trigger_price, tp)
    return OrderRequest(
        user_id=user_id, variety=Variety.REGULAR, exchange=Exchange(exchange), tradingsymbol=tradingsymbol,
        instrument_token=instrument_token, transaction_type=side, order_type=order_type, quantity=quantity,
        product=Product(product), price=price if order_type in (OrderType.LIMIT, OrderType.SL) else 0,
        trigger_price=trigger_price, validity=Validity.DAY,
        market_protection=market_protection if order_type in (OrderType.MARKET, OrderType.SL_M) else 0,
        tag=make_tag(origin or signal_id or group_id, kind, index, slice_no), signal_id=signal_id, group_id=group_id,
        leg_index=index, kind=kind)


def sliced(req: OrderRequest, inst: Instrument | None) -> list[OrderRequest]:
    """``req`` cut at the instrument's freeze quantity, each slice with its own tag (slice number)."""
    parts = slices(req.quantity, lot_of(inst), freeze_of(inst))
    if len(parts) == 1:
        return [req]
    return [msgspec.structs.replace(req, quantity=q, tag=req.tag[:-2] + f"{i % 100:02d}" if is_kta_tag(req.tag)
                                    else req.tag) for i, q in enumerate(parts)]


def marketable(req: OrderRequest, inst: Instrument | None, last_price: int,
               band_pct: float = STOCK_OPTION_BAND_PCT) -> OrderRequest:
    """A MARKET order on a stock option becomes a LIMIT through the last price by ``band_pct``
    (Kite blocks MARKET orders there). Needs the last price; everything else passes unchanged."""
    if req.order_type is not OrderType.MARKET or not is_stock_option(inst) or last_price <= 0:
        return req
    through = 1 + band_pct / 100 if req.transaction_type is TransactionType.BUY else 1 - band_pct / 100
    price = round_to_tick(int(last_price * through), tick_paise(inst), req.transaction_type)
    return msgspec.structs.replace(req, order_type=OrderType.LIMIT, price=max(price, tick_paise(inst)),
                                   market_protection=0)


def signal_requests(sig: Signal, inst: Instrument | None, market_protection: int, kind: str | None = None,
                    quantity: int | None = None) -> list[OrderRequest]:
    """The entry (or exit) order(s) of a single-instrument signal, sliced at the freeze quantity.
    ``quantity`` overrides the signal's (an exit clamped to the position)."""
    req = order_request(sig.user_id, signal_id=sig.id, kind=kind or sig.intent, exchange=sig.exchange,
                        tradingsymbol=sig.tradingsymbol, instrument_token=sig.instrument_token,
                        side=sig.transaction_type, quantity=quantity or sig.quantity, product=sig.product,
                        order_type=sig.order_type, price=sig.price, trigger_price=sig.trigger_price or 0,
                        market_protection=market_protection, inst=inst)
    return sliced(req, inst)


def protective_requests(sig: Signal, filled: int, inst: Instrument | None, slippage_pct: float) -> list[OrderRequest]:
    """After an entry fills: the stop-loss as an SL order (trigger = stop, limit = trigger ± slippage)
    and the target as a LIMIT, both closing ``filled`` units."""
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
                quantity: int | None = None) -> list[OrderRequest]:
    """One leg of a group, sliced."""
    req = order_request(user_id, group_id=group_id, kind=kind, exchange=leg.exchange,
                        tradingsymbol=leg.tradingsymbol, instrument_token=leg.instrument_token,
                        side=side or leg.transaction_type, quantity=quantity or leg.quantity, product=leg.product,
                        order_type=leg.order_type, price=leg.price, market_protection=market_protection,
                        index=index, inst=inst)
    return sliced(req, inst)


def closing_request(user_id: str, position: Position, kind: str, origin: str, index: int,
                    inst: Instrument | None, market_protection: int = -1) -> list[OrderRequest]:
    """The orders that close ``position`` (a protected MARKET order, sliced)."""
    side = TransactionType.BUY if position.quantity < 0 else TransactionType.SELL
    req = order_request(user_id, kind=kind, origin=origin, exchange=position.exchange,
                        tradingsymbol=position.tradingsymbol, instrument_token=position.instrument_token, side=side,
                        quantity=abs(position.quantity), product=position.product, order_type=OrderType.MARKET,
                        market_protection=market_protection, index=index, inst=inst)
    return sliced(req, inst)


def flatten_plan(user_id: str, positions: Iterable[Position], origin: str,
                 instruments: dict[str, Instrument] | None = None) -> list[OrderRequest]:
    """Orders that close every open position, short positions first (no long hedge is sold while
    the short it covers is still open); protected MARKET orders, sliced, one tag per position."""
    instruments = instruments or {}
    open_positions = sorted((p for p in positions if p.quantity), key=lambda p: (p.quantity > 0, p.exchange,
                                                                                 p.tradingsymbol, p.product))
    out: list[OrderRequest] = []
    for p in open_positions:
        inst = instruments.get(f"{p.exchange}:{p.tradingsymbol}")
        out += closing_request(user_id, p, "flatten", f"{origin}:{p.exchange}:{p.tradingsymbol}:{p.product}", 0, inst)
    return out
