"""Orders to the broker and back: place exactly once by tag, read back until final, modify within
Kite's limits, cancel as kta (so the journal says who cancelled it).

Placement is exactly-once by construction: every order has a deterministic tag; before anything is
sent the order book is checked, the order is journaled as SUBMITTING, and an order whose submit
outcome was lost (UNKNOWN) is looked up at the broker by tag before it is ever sent again."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from execution_worker import fill_journal
from execution_worker.engine import Desk, DeskClosed
from execution_worker.order_gate import OrderGateError
from shared.kite import errors, waits
from shared.messages import KillSwitchState, OrderRequest, OrderType, to_rupees
from shared.trading.order import (
    WITHDRAWN,
    Applied,
    CancelRequested,
    HeldAmended,
    Order,
    OrderState,
    Placed,
    Submitted,
    SubmitFailed,
    SubmitLost,
)

log = logging.getLogger("kta.execution")
URGENT = ("stop_loss", "target", "flatten", "exit")  # orders that take risk off: first through the order gate
UPDATE_GRACE = 2.0  # s an order's WebSocket update is awaited before the broker is asked (an exit waits on it)
CONFIRM_GRACE = 10.0  # the same after a placement: nothing waits on it, and reconciliation (30 s) backs it up
NAMING_GRACE = 10.0  # s a cancel waits for an order still being placed to be named by the broker


async def place(desk: Desk, req: OrderRequest, strategy_id: str = "", admitted: Applied | None = None) -> str | None:
    """Place ``req`` once. Returns the broker order id, or None if it was refused / is unknown.
    A tag goes to the broker at most once, unless the broker provably never took it (the order gate,
    a 429, its own refusal): a lost submit is looked up by tag and otherwise left to reconciliation.
    ``admitted``: marked SUBMITTING by its decision (``admit_now``): sent now."""
    order = desk.book.get(req.tag)
    if order is not None and order.order_id:
        return order.order_id
    if order is not None and order.state not in (OrderState.INITIALIZED, OrderState.SUBMITTING,
                                                 OrderState.UNKNOWN, OrderState.HELD) and not order.may_resubmit:
        return None
    first = desk.in_flight.get(req.tag)
    if first is not None:  # its first submit has not answered yet: never a second one — its answer is this one's
        # (a redelivered signal, acked as soon as this returned, once left a first submit still waiting at the gate:
        # killed then, its INITIALIZED order was never sent, the message gone — the topology test's "never placed")
        log.warning("order %s is already being submitted: its answer is awaited", req.tag)
        return await asyncio.shield(first)
    answer = desk.in_flight[req.tag] = asyncio.get_running_loop().create_future()
    try:
        result = await (_submit(desk, order, req, admitted) if admitted is not None and order is not None
                        else _place_once(desk, req, order, strategy_id))
    except BaseException as e:
        answer.set_exception(e if isinstance(e, Exception) else RuntimeError(f"the submit of {req.tag} was cut off"))
        answer.exception()  # (retrieved: nobody need be waiting)
        raise
    else:
        answer.set_result(result)
    finally:
        del desk.in_flight[req.tag]
    return result


async def _place_once(desk: Desk, req: OrderRequest, order: Order | None, strategy_id: str) -> str | None:
    if order is not None and order.state in (OrderState.SUBMITTING, OrderState.UNKNOWN):
        found = await desk.client.find_order_by_tag(req.tag)
        if found is not None:
            await desk.on_broker(found)
            return found.order_id
        return None  # it may still land: reconciliation adopts it, never a second POST
    return await _submit(desk, order or desk.new_order(req, strategy_id), req)


def halted(desk: Desk) -> str:
    """Why an entry may not go out now (the kill switch is HALTED): "" when it may."""
    state = desk.risk.snapshot()
    return f"kill switch {state.state}: {state.reason}" if state.state is KillSwitchState.HALTED else ""


def admit_now(desk: Desk, order: Order) -> Applied | None:
    """An entry its decision sends at once: the order gate admits it now (nobody waiting before it), the kill
    switch lets it go and the desk is open — then it is marked SUBMITTING in the caller's commit (the decision's:
    one commit for both, still durable before its POST leaves). None: it goes through ``_submit``'s waits."""
    if order.kind != "entry" or desk.gate.queued or halted(desk) or desk.closed:
        return None
    try:
        if not desk.gate.admit(desk.gate.clock()):
            return None
    except OrderGateError:  # the day's cap: refused and journaled the usual way
        return None
    applied, _, _ = desk.apply(order, Submitted(ts=time.time_ns()))  # quiet: nothing to tell
    return applied


async def _submit(desk: Desk, order: Order, req: OrderRequest, admitted: Applied | None = None) -> str | None:
    if admitted is not None:  # SUBMITTING and durable with its decision (admit_now)
        await desk.react(order, admitted)
    elif not await _admitted(desk, order, req):
        return None
    started = time.perf_counter()
    try:
        order_id = await desk.client.place_order(
            req.variety.value, req.exchange.value, req.tradingsymbol, req.transaction_type.value, req.quantity,
            req.product.value, req.order_type.value,
            price=to_rupees(req.price) if req.order_type in (OrderType.LIMIT, OrderType.SL) else None,
            trigger_price=to_rupees(req.trigger_price) if req.trigger_price else None,
            validity=req.validity.value,
            market_protection=req.market_protection if req.order_type in (OrderType.MARKET, OrderType.SL_M)
            else None, tag=req.tag)
    except errors.TooManyRequests as e:  # a 429 is an answer: the order was not taken
        await desk.record(order, SubmitFailed(reason=f"rate limited: {e.message}", code="TooManyRequests"))
        log.warning("order %s refused by the broker's rate limit: %s", req.tag, e.message)
        return None
    except errors.NetworkException as e:
        await desk.record(order, SubmitLost(reason=str(e.message)))
        log.warning("order %s outcome unknown: %s (reconciliation resolves it by tag)", req.tag, e.message)
        return None
    except errors.KiteError as e:  # the broker refused it, with its message
        if isinstance(e, errors.HoldingAuthorisationRequired) and desk.held_sells is not None:
            await desk.held_sells.hold(order, e)  # a delivery sell waiting for the depository (authorisation.py)
            return None
        await desk.record(order, SubmitFailed(reason=f"{e.error_type}: {e.message}", code=e.error_type))
        log.warning("order %s refused by the broker: %s", req.tag, e.message)
        return None
    desk.latencies_ms.append((time.perf_counter() - started) * 1000)
    await desk.first.follow_up()  # the answer is journaled after the signals being decided have sent theirs
    await desk.record(order, Placed(order_id=order_id, ts=time.time_ns()))
    desk.bus.spawn(confirm(desk, order_id), name=f"confirm:{order_id}")
    return order_id


async def _admitted(desk: Desk, order: Order, req: OrderRequest) -> bool:
    """Through the order gate and journaled SUBMITTING; False: refused or withdrawn (and journaled so)."""
    try:
        with waits.waiting(waits.BUDGET):
            await desk.gate.acquire(urgent=order.kind in URGENT)
    except OrderGateError as e:
        await desk.record(order, SubmitFailed(reason=str(e), code=e.code, ts=time.time_ns()))
        log.warning("order %s refused by the order gate: %s", req.tag, e)
        return False
    # an entry decided before the kill switch tripped and still on its way (waiting at the gate behind the stops
    # and flattens) is not sent after it: soak seed 41 placed SELL 12 RELIANCE 0.9 s after the trip
    if order.kind == "entry" and (why := halted(desk)):
        await desk.record(order, SubmitFailed(reason=f"withdrawn before it was sent: {why}", code=WITHDRAWN,
                                              ts=time.time_ns()))
        log.warning("entry %s withdrawn before it was sent: %s", req.tag, why, extra={"user_id": desk.user_id})
        return False
    if desk.closed:  # (waited at the gate while the lease moved): the order stays planned, for the new desk to send
        raise DeskClosed(desk.user_id, desk.closed)
    await desk.record(order, Submitted(ts=time.time_ns()))  # journaled before it leaves
    return True


async def refresh(desk: Desk, order: Order) -> bool:
    """Read the order back from the broker and apply what it says. False if the read failed.
    Orders refreshed together share one read (``Desk.order_reads``)."""
    try:
        view = await desk.order_reads.of(order.order_id)
    except errors.KiteError as e:  # a 429 or a blip: the next round asks again
        log.info("order %s not read back: %s", order.order_id, e)
        return False
    if view is None:  # not in the broker's book
        log.info("order %s not read back: not in the broker's book", order.order_id)
        if order.unjournaled and desk.of_a_closed_day(order):
            with contextlib.suppress(errors.KiteError):  # (a 429: the next round asks again)
                await fill_journal.journal_fills(desk, order, [])  # gone with its day: its fills from its final report
        return False
    try:
        await desk.on_broker(view)
    except errors.KiteError as e:  # its fills' read failed: they stay owed, and the next round reads them
        log.info("order %s: fills not read: %s", order.order_id, e)
        return False
    return True


async def confirm(desk: Desk, order_id: str, attempts: int = 8) -> None:
    """A 200 from place only means the OMS took the request: read the order back until it is
    final, so a fill is journaled even if its WebSocket update never arrives. While the WebSocket
    relays the user's updates, its first word on the order is awaited instead (reconciliation stays
    the safety net): no read-back on the hot path, none of the api_key's 10 requests/s spent."""
    order = desk.book.by_order_id(order_id)
    if order is not None and desk.updates_flowing and await settled(desk, [order], CONFIRM_GRACE, _heard):
        return
    delay = 0.1  # not stamina: a poll for the order's final state, not a retry (a failed read stops it)
    for _ in range(attempts):
        await asyncio.sleep(delay)
        order = desk.book.by_order_id(order_id)
        if order is None or _final(order):
            return
        if not await refresh(desk, order):
            return
        delay = min(2.0, delay * 2)


def _final(order: Order) -> bool:
    return order.is_terminal and not order.unjournaled


def _named(order: Order) -> bool:
    """The broker has given the order its id (or it ended without one)."""
    return bool(order.order_id) or order.is_terminal


def _heard(order: Order) -> bool:
    """The broker has spoken about the order since it was placed (and any fills are journaled)."""
    return _final(order) or (not order.is_terminal and order.state is not OrderState.PLACED)


async def settled(desk: Desk, orders: list[Order], timeout: float, done=_final) -> bool:
    """Wait, reading nothing from the broker, until ``done`` holds for every order (the desk's
    updates move them); False at the timeout."""
    deadline = time.monotonic() + timeout
    with waits.waiting(waits.BROKER):  # the broker's word on the orders
        async with desk.order_changed:  # checked under the condition's lock: no notification slips between
            while not all(done(o) for o in orders):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                try:
                    await asyncio.wait_for(desk.order_changed.wait(), left)
                except asyncio.TimeoutError:
                    pass
    return True


async def modify(desk: Desk, order: Order, *, quantity: int | None = None, price: int | None = None,
                 trigger_price: int | None = None, order_type: str | None = None) -> str:
    """Modify an open order (prices in paise) within Kite's 25 modifications per order. Returns ""
    when the broker took it, else why not (the gate's or the broker's words). A HELD order (waiting for
    the depository) takes the new terms in kta and is sent with them: no broker call, no replacement."""
    if order.state is OrderState.HELD:  # not at the broker (its 428 was a refusal): it is sent with the new terms
        await desk.record(order, HeldAmended(quantity=quantity or 0, price=price or 0, trigger_price=trigger_price or 0,
                                             order_type=order_type or ""))
        log.info("held order %s amended (sent with these terms once authorised)", order.tag,
                 extra={"user_id": desk.user_id})
        return ""
    if not order.order_id or order.is_terminal:
        return f"order {order.order_id or order.tag} is {order.state}: nothing to modify"
    try:
        desk.gate.modify(order.order_id)
        await desk.gate.acquire(urgent=order.kind in URGENT)
        await desk.client.modify_order(order.variety, order.order_id, quantity=quantity,
                                       price=to_rupees(price) if price else None, order_type=order_type,
                                       trigger_price=to_rupees(trigger_price) if trigger_price else None)
    except OrderGateError as e:
        log.warning("modify %s refused: %s", order.order_id, e, extra={"user_id": desk.user_id})
        return e.message
    except errors.KiteError as e:
        log.warning("modify %s refused: %s", order.order_id, e, extra={"user_id": desk.user_id})
        return e.message
    return ""


async def cancel(desk: Desk, order: Order, reason: str) -> None:
    """Cancel as kta: the order's journal says ``reason``, not the broker's "Cancelled by user".
    A HELD order (never at the broker) is withdrawn: it is never sent."""
    if order.state is OrderState.HELD:
        await desk.record(order, SubmitFailed(reason=f"withdrawn before it was sent: {reason}", code=WITHDRAWN,
                                              ts=time.time_ns()))
        return
    if not order.order_id and order.state is OrderState.SUBMITTING:
        # on its way to the broker: cancelled once the broker has named it. Returning at once left it working — a
        # stop the protector was placing as a square-off began rested on, and the square-off's wait for it to end
        # ran its 10 s out while the broker's own MIS square-off came (system test, CI at load 5-9)
        await settled(desk, [order], NAMING_GRACE, _named)
    if not order.order_id or order.is_terminal:
        return
    await desk.record(order, CancelRequested(reason=reason, ts=time.time_ns()))
    with waits.waiting(waits.BUDGET):
        await desk.gate.acquire(daily=False, urgent=True)  # the one limiter of order calls; a cancel takes risk off
    try:
        await desk.client.cancel_order(order.variety, order.order_id)
    except errors.InputException as e:  # already done at the broker: reconciliation catches up
        log.info("cancel %s: %s", order.order_id, e.message)
    except errors.NetworkException as e:  # 429s outlasting the client's retries, or a lost answer
        log.warning("cancel %s not confirmed: %s (the order is read back and reconciled)", order.order_id,
                    e.message, extra={"user_id": desk.user_id})


async def wait_final(desk: Desk, orders: list[Order], timeout: float) -> None:
    """Until every order is final (and its fills journaled) or the timeout passes. While the
    WebSocket relays the user's updates they are awaited first; the broker's book is read back when
    they are late (or not flowing)."""
    deadline = time.monotonic() + timeout
    if desk.updates_flowing and await settled(desk, orders, min(UPDATE_GRACE, timeout)):
        return
    while True:
        if all(_final(o) for o in orders):
            return
        left = deadline - time.monotonic()
        if left <= 0:
            return
        # read back together: one read of the broker's order book a round for all of them (and one of its trade
        # book for the fills they owe), not one each — a square-off's twenty drew 429s from the api_key's 10/s
        unread = [o for o in orders if o.order_id and not _final(o)]
        if len(unread) == 1:  # read in this task: a task of its own gives the protection sync its fill spawns a turn
            await refresh(desk, unread[0])  # to start first, and the caller's own sync then found it in flight
        else:
            await asyncio.gather(*(refresh(desk, o) for o in unread))
        await settled(desk, orders, min(0.25, max(0.01, left)))
