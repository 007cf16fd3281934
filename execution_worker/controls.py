"""The operator's controls over a desk: square off everything, keep every position protected when
trading stops, and the trader's own orders (placed through the same risk checks and protection as a
strategy's signal; modified and cancelled from the order book)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid

from execution_worker import intraday, placing, signals
from execution_worker.engine import Desk
from execution_worker.journal import REFUSED
from shared import messages as m
from shared.kite import errors
from shared.trading import planning
from shared.trading.risk import RiskCode, outside_band
from shared.trading.order import TERMINAL, Order, parse_status
from shared.trading.protection import Protection, default_stop, position_key
from shared.trading.protection_status import BOUNDED, option_cover

log = logging.getLogger("kta.controls")
SQUARE_OFF_CANCEL_TIMEOUT = 10.0
# the order field a refusal names, so the trader sees it beside the input
REFUSAL_FIELD = {"INVALID_STOP": "stop_loss", "INVALID_TARGET": "target", "INVALID_TRIGGER": "trigger_price",
                 "PRICE_OUTSIDE_BAND": "price",
                 "POSITION_SIZE": "quantity", "NO_POSITION": "intent", "PRICE_UNKNOWN": "price", "EXPOSURE_LIMIT": "quantity",
                 "SYMBOL_EXPOSURE": "quantity", "STRATEGY_EXPOSURE": "quantity"}


def open_positions(desk: Desk, product: str = "") -> list[m.Position]:
    """The open positions (of ``product`` only, when given)."""
    return [p for p in desk.tracker.positions() if p.quantity and (not product or (p.product or "MIS") == product)]


def owing(desk: Desk, product: str = "") -> list:
    """Orders of ``product`` (every product: "") whose fills the broker reports and the journal lacks yet."""
    return [o for o in desk.book.owing() if not product or o.product == product]


async def square_off(desk: Desk, reason: str, product: str = "") -> dict:
    """Cancel every working order (stop-losses included) — kta's book's, and any of kta's the
    broker's book still shows working — and wait until they are final, then close
    every position, short ones first, each under the strategy that holds it (what the broker holds
    beyond kta's book, the cross-check has adopted as the account's own: closed under none). Protection
    is held back meanwhile and comes back for whatever the flatten leaves open. An entry a strategy
    sent before it, still queued, is refused (``Desk.entry_closed``). ``product``: only that product's
    positions and orders (kta's own MIS square-off, intraday.py; its cutoff refuses the entries)."""
    started = time.time_ns()
    if not product:
        desk.entries_after_ns = started  # an entry queued behind the square-off would reopen a position
    positions = open_positions(desk, product)
    keys = [position_key(p.strategy_id, p.exchange, p.tradingsymbol) for p in positions]
    origin = f"squareoff|{started}"
    async with contextlib.AsyncExitStack() as held:
        await held.enter_async_context(desk.protector.holding(keys))
        stuck = await desk.protector.clear(keys)  # GTTs first: one left active could fire after the flatten
        working = [o for o in desk.book.working() if not product or o.product == product]
        await _together(placing.cancel(desk, order, reason) for order in working)
        working += await _cancel_at_broker(desk, reason, product)
        # orders the broker reported filled whose fills are not journaled yet (a stop's COMPLETE is heard before
        # its trades are read): the positions are read once those fills are in them, or a flatten sells them again
        # (of the product squared off: a delivery order's fills unread under 429s held kta's MIS square-off back with
        # every intraday stop already cancelled — soak seed 107, 13 positions unprotected for 11 s)
        await placing.wait_final(desk, working + owing(desk, product), SQUARE_OFF_CANCEL_TIMEOUT)
        # a position opened meanwhile (an entry sent before the square-off filled during its cancels) got a stop of
        # its own: held back and cancelled too, or that stop and the flatten both close it (soak seed 13: 0 -> +5)
        late = [position_key(p.strategy_id, p.exchange, p.tradingsymbol) for p in open_positions(desk, product)]
        late = [k for k in late if k not in keys]
        if late:
            await held.enter_async_context(desk.protector.holding(late))
            stuck |= await desk.protector.clear(late)
            seen = {o.tag for o in working}
            more = [o for o in desk.book.working() if o.tag not in seen and (not product or o.product == product)]
            await _together(placing.cancel(desk, order, reason) for order in more)
            await placing.wait_final(desk, more + owing(desk, product), SQUARE_OFF_CANCEL_TIMEOUT)
            working += more
        placed = []
        closing = [p for p in open_positions(desk, product)
                   if position_key(p.strategy_id, p.exchange, p.tradingsymbol) not in stuck]
        for p in open_positions(desk, product):
            if p not in closing:
                log.warning("square off: %s %s kept, its GTT could not be deleted", p.strategy_id, p.tradingsymbol,
                            extra={"user_id": desk.user_id})
        # short positions first (an option's short leg bought back before its wing is sold), each side's flattens
        # sent together: one at a time, 16 positions under a 0.4 s broker took 14 s (soak seed 19's MIS cutoff)
        for side in ([p for p in closing if p.quantity < 0], [p for p in closing if p.quantity > 0]):
            reqs = [(p, req) for p in sorted(side, key=lambda p: (p.exchange, p.tradingsymbol))
                    for req in planning.closing_request(desk.user_id, p, "flatten", f"{origin}|{p.strategy_id}|"
                                                        f"{p.exchange}:{p.tradingsymbol}:{p.product}", 0,
                                                        desk.inst(p.exchange, p.tradingsymbol), desk.market_protection)]
            await _together(placing.place(desk, planning.marketable(
                req, desk.inst(p.exchange, p.tradingsymbol), desk.prices.known(f"{p.exchange}:{p.tradingsymbol}")),
                p.strategy_id) for p, req in reqs)
            placed += [{"strategy_id": p.strategy_id, "tradingsymbol": p.tradingsymbol,
                        "transaction_type": req.transaction_type.value, "quantity": req.quantity, "tag": req.tag}
                       for p, req in reqs]
    log.warning("square off (%s): %d orders cancelled, %d placed", reason, len(working), len(placed),
                extra={"user_id": desk.user_id})
    return {"cancelled": len([o for o in working if o.order_id]), "placed": placed}


async def _together(calls) -> None:
    """Broker calls sent at once (the order gate paces them): each one's failure is its own, logged by it."""
    await asyncio.gather(*calls)


async def _cancel_at_broker(desk: Desk, reason: str, product: str = "") -> list[Order]:
    """kta's orders the broker still works that kta's book does not (a crash before the answer was
    journaled, a wrong inference): the square-off goes by the broker's book, so none outlives it.
    Returns those now known to the book (to be awaited with the rest)."""
    try:
        book = await desk.client.orders()
    except errors.KiteError as e:
        log.warning("square off: the broker's order book was not read (%s): only kta's own book was cancelled", e,
                    extra={"user_id": desk.user_id})
        return []
    adopted = []
    for k in book:
        state = parse_status(k.status)
        if not planning.is_kta_tag(k.tag) or state is None or state in TERMINAL or product and k.product != product:
            continue
        known = desk.book.find(k.order_id, k.tag)
        if known is not None and known.is_working:
            continue  # cancelled already
        log.warning("square off: order %s (%s) is %s at the broker, %s in kta's book: cancelled", k.order_id, k.tag,
                    k.status, known.state if known else "unknown", extra={"user_id": desk.user_id})
        if known is None:
            await desk.on_broker(k)  # adopted, journaled, then cancelled as kta's own
            known = desk.book.find(k.order_id, k.tag)
        if known is not None and known.is_working:
            await placing.cancel(desk, known, reason)
            adopted.append(known)
            continue
        try:  # kta's book holds it final: cancelled by its id, the broker's answer is the record
            await desk.gate.acquire(daily=False, urgent=True)
            await desk.client.cancel_order(k.variety or "regular", k.order_id)
        except errors.KiteError as e:
            log.warning("square off: cancel of %s refused: %s", k.order_id, e, extra={"user_id": desk.user_id})
    return adopted


async def protect_all(desk: Desk, default_stop_pct: float) -> list[dict]:
    """Every open position keeps a stop at the broker: one the strategy never set gets one
    ``default_stop_pct`` from the last price — except an option position whose loss is bounded without
    one (``option_cover``: a bought option, or a short its strategy's long options cover). A stop of
    our own on a wing would sell it as it cheapens and leave the short it hedges naked. Returns each
    position and its stop (0 and ``bounded``: why, for those left to their premium or wings)."""
    out = []
    positions = open_positions(desk)
    cover = option_cover(positions, desk.inst)
    for p in positions:
        key = position_key(p.strategy_id, p.exchange, p.tradingsymbol)
        plan = desk.protector.plans.get(key)
        own_stop = plan is not None and plan.stop and plan.mode != "failed"
        if not own_stop and (bounded := cover.get((p.strategy_id, p.exchange, p.tradingsymbol))):
            out.append({"strategy_id": p.strategy_id, "tradingsymbol": p.tradingsymbol, "quantity": p.quantity,
                        "stop": 0, "bounded": BOUNDED[bounded]})
            continue
        if not own_stop:
            k = f"{p.exchange}:{p.tradingsymbol}"
            last = (await desk.prices.prices(desk.client, [k])).get(k, 0) or p.last_price
            plan = Protection(user_id=desk.user_id, strategy_id=p.strategy_id, exchange=p.exchange,
                              tradingsymbol=p.tradingsymbol, instrument_token=p.instrument_token,
                              product=p.product or "MIS",
                              stop=default_stop(last, p.quantity, default_stop_pct,
                                                desk.inst(p.exchange, p.tradingsymbol)))
            desk.protector.plans[key] = plan
            desk.journal.save_protection(plan)
        await desk.protector.sync(key)
        out.append({"strategy_id": p.strategy_id, "tradingsymbol": p.tradingsymbol, "quantity": p.quantity,
                    "stop": plan.stop})
    return out


# ---- the trader's own orders ---------------------------------------------------------------------

async def place_order(desk: Desk, cmd: m.PlaceOrder) -> m.Ok | m.Error:
    inst = desk.inst(cmd.exchange.value, cmd.tradingsymbol)
    if inst is None:
        return m.Error(code="not_found", message=f"no instrument {cmd.exchange}:{cmd.tradingsymbol}",
                       field="tradingsymbol")
    if inst.lot_size > 1 and cmd.quantity % inst.lot_size:
        return m.Error(code="bad_request", message=f"quantity must be a multiple of the lot size {inst.lot_size}",
                       field="quantity")
    if cmd.order_type in (m.OrderType.LIMIT, m.OrderType.SL) and not cmd.price:
        return m.Error(code="bad_request", message=f"a {cmd.order_type} order needs a price", field="price")
    if problem := _trigger_problem(cmd):
        return m.Error(code="bad_request", message=problem[1], field=problem[0])
    if cmd.intent == "entry" and cmd.product is m.Product.MIS and intraday.past_cutoff(desk):
        return m.Error(code="MIS_CUTOFF", message=f"intraday (MIS) entries close at {desk.mis_square_off_at:%H:%M} "
                       "(kta's own MIS square-off): choose CNC or NRML, or exit", field="product")
    sig = m.Signal(id=f"M{cmd.client_id or uuid.uuid4().hex[:16]}", user_id=desk.user_id,
                   strategy_id=cmd.strategy_id, strategy="manual", exchange=cmd.exchange,
                   tradingsymbol=cmd.tradingsymbol, instrument_token=inst.instrument_token,
                   transaction_type=cmd.transaction_type, quantity=cmd.quantity, product=cmd.product,
                   order_type=cmd.order_type, price=cmd.price, trigger_price=cmd.trigger_price,
                   stop_loss=cmd.stop_loss, target=cmd.target,
                   intent=cmd.intent, reason="manual order", created_at=time.time_ns(), metadata={"source": "manual"})
    await signals.on_signal(desk, sig)
    row = desk.journal.signal(sig.id) or {}
    if row.get("decision") == REFUSED:
        return m.Error(code=row["code"], message=row["reason"], field=REFUSAL_FIELD.get(row["code"]))
    return m.Ok(data={"signal_id": sig.id, "reason": row.get("reason", ""), "orders": [
        {"tag": o.tag, "order_id": o.order_id, "state": o.state.value, "quantity": o.quantity,
         "message": o.status_message} for o in desk.book.of_signal(sig.id) if not o.is_protective]})


def _trigger_problem(cmd: m.PlaceOrder) -> tuple[str, str] | None:
    """(field, why) when the order's own trigger is missing or misplaced, before risk judges it against
    the market (``RiskCode.INVALID_TRIGGER``)."""
    stop_order = cmd.order_type in (m.OrderType.SL, m.OrderType.SL_M)
    if stop_order and cmd.intent == "exit":
        return "order_type", ("an exit goes at the market or a limit: the position's own stop-loss is its stop "
                              "order (move its trigger in the order book)")
    if stop_order and not cmd.trigger_price:
        return "trigger_price", f"an {cmd.order_type} order needs its trigger price"
    if not stop_order and cmd.trigger_price:
        return "trigger_price", f"a {cmd.order_type} order has no trigger (choose SL or SL-M)"
    if cmd.order_type is m.OrderType.SL_M and cmd.price:
        return "price", "an SL-M order fills at the market once triggered: leave its price empty (or choose SL)"
    return None


def find(desk: Desk, tag: str) -> Order | None:
    return desk.book.get(tag) or desk.book.by_order_id(tag)


async def modify_order(desk: Desk, cmd: m.ModifyOrder) -> m.Ok | m.Error:
    order = find(desk, cmd.tag)
    if order is None or not order.is_working:
        return m.Error(code="not_found", message=f"no open kta order {cmd.tag}", field="tag")
    quantity, price = cmd.quantity, cmd.price
    if order.is_protective:
        # the order book's form sends every field, changed or not: only a change is one
        if cmd.quantity is not None and cmd.quantity != order.quantity:
            return m.Error(code="bad_request", message="a stop-loss covers its position's quantity by itself",
                           field="quantity")
        quantity = None
        if cmd.trigger_price and order.order_type == "SL" and order.price and price in (None, order.price):
            # its trigger moved, its limit price not: the limit keeps its distance behind the trigger (left where
            # it was, a SELL stop moved below its limit would be refused, a BUY one above it the same)
            price = cmd.trigger_price + (order.price - order.trigger_price)
        plan = desk.protector.plans.get(position_key(order.strategy_id, order.exchange, order.tradingsymbol))
        if plan is not None and cmd.trigger_price:
            plan.stop = cmd.trigger_price  # the position's stop moves: its protection follows the trader
            desk.journal.save_protection(plan)
    if price and (cmd.order_type.value if cmd.order_type else order.order_type) in ("LIMIT", "SL"):
        key = f"{order.exchange}:{order.tradingsymbol}"
        lower, upper = (await desk.prices.circuits(desk.client, [key])).get(key, (0, 0))
        if problem := outside_band(order.tradingsymbol, order.transaction_type.value, price, lower, upper):
            return m.Error(code=RiskCode.PRICE_OUTSIDE_BAND.value, message=problem, field="price")
    refused = await placing.modify(desk, order, quantity=quantity, price=price,
                                   trigger_price=cmd.trigger_price,
                                   order_type=cmd.order_type.value if cmd.order_type else None)
    if refused:
        return m.Error(code="broker_refused", message=refused, field="tag")
    return m.Ok(data={"tag": order.tag, "order_id": order.order_id})


async def cancel_order(desk: Desk, cmd: m.CancelOrder) -> m.Ok | m.Error:
    order = find(desk, cmd.tag)
    if order is None or not order.is_working:
        return m.Error(code="not_found", message=f"no open kta order {cmd.tag}", field="tag")
    if order.is_protective:
        return m.Error(code="bad_request", message="this stop-loss protects an open position: exit the position or "
                                                   "square off instead", field="tag")
    await placing.cancel(desk, order, "cancelled by the trader")
    return m.Ok(data={"tag": order.tag, "order_id": order.order_id})
