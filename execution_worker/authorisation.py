"""Delivery sells that wait for the depository (Kite's HTTP 428, CDSL eDIS / TPIN).

An account without DDPI (or a physical POA) must authorise, each trading day, the shares it sells out
of its demat holdings; until then Kite refuses such a CNC sell with HTTP 428. Nothing was placed, so
the order is HELD, not failed: kta asks Kite for an authorisation request, tells the trader where to
enter the TPIN (an alert carrying the depository's link; the order's message on the dashboard),
watches the holdings, and sends the same order (same tag) once a new authorisation shows. It is never
placed twice: a HELD order has no broker order (a 428 is a refusal), only this watcher sends a HELD
order again, under the desk's lock, and a second 428 just holds it again with a fresh link. A held
order the trader cancels, a stop, or the end of its trading day withdraws it (FAILED, ``WITHDRAWN``):
it is never sent."""

from __future__ import annotations

import asyncio
import logging
import time

from execution_worker import placing
from execution_worker.alerts import alert
from execution_worker.engine import Desk
from shared.kite import errors
from shared.kite.models import Holding
from shared.trading.order import Order, OrderState, SubmitHeld
from shared.trading.protection import position_key

log = logging.getLogger("kta.execution")
POLL_SECONDS = 2.0  # how often the holdings are read while an order is held (one GET, the "other" budget)
URGENT = ("exit", "flatten", "stop_loss", "rollback")  # a held one leaves a position open or unprotected


class HeldSells:
    """One desk's held delivery sells and the watcher that releases them."""

    def __init__(self, desk: Desk) -> None:
        self.desk = desk
        self.seen: dict[str, int] = {}  # tag -> its instrument's authorised quantity when it was held
        self.task: asyncio.Task | None = None

    def close(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def held(self) -> list[Order]:
        return [o for o in self.desk.book.working() if o.state is OrderState.HELD]

    async def hold(self, order: Order, refusal: errors.HoldingAuthorisationRequired) -> None:
        """The broker refused ``order`` (being submitted) for want of authorisation: hold it, start the
        authorisation and tell the trader where to give it."""
        desk = self.desk
        if desk.edis is not None:
            desk.edis.learned()
        link, problem = "", ""
        try:
            holding = await self._holding(order)
            self.seen[order.tag] = holding.authorised_quantity if holding else 0
            request_id = await desk.client.authorise_holdings([(holding.isin, order.quantity)] if holding else None)
            link = desk.client.holdings_authorisation_url(request_id)
        except errors.KiteError as e:  # the trader can still authorise from Kite's own holdings page
            problem = f"kta could not start the authorisation ({e.message}): authorise from Kite's holdings page"
            request_id = str(time.time_ns())
        where = f"authorise at {link}" if link else problem
        await desk.record(order, SubmitHeld(reason=f"held: {refusal.message}; {where}. kta sends it once the "
                                                   f"depository confirms", ts=time.time_ns()))
        side = "close a position" if order.kind in URGENT else "sell"
        await alert(desk.bus, desk.user_id, "authorisation",
                    f"Authorise {order.quantity} {order.tradingsymbol} at the depository (eDIS/TPIN)",
                    f"Kite refused the {order.kind} order {order.tag} to {side} ({order.quantity} "
                    f"{order.tradingsymbol}, CNC): {refusal.message}. Nothing was placed. {where[:1].upper()}"
                    f"{where[1:]} with your TPIN; kta then places this order once. Cancel it from the order "
                    f"book if you no longer want it.",
                    severity="critical" if order.kind in URGENT else "warning", key=f"edis:{order.tag}:{request_id}",
                    link=link, clock=desk.exchange)
        log.warning("order %s held for the depository's authorisation: %s", order.tag, refusal.message,
                    extra={"user_id": desk.user_id})
        self.watch()

    async def _holding(self, order: Order) -> Holding | None:
        return next((h for h in await self.desk.client.holdings()
                     if (h.exchange, h.tradingsymbol) == order.instrument
                     or (order.instrument_token and h.instrument_token == order.instrument_token)), None)

    def watch(self) -> None:
        """Watch the holdings while any order is held (also after a restart: the journal kept them)."""
        if (self.task is None or self.task.done()) and self.held():
            self.task = self.desk.bus.spawn(self._watch(), name=f"held-sells:{self.desk.user_id}")

    async def _watch(self) -> None:
        while self.held():
            await asyncio.sleep(POLL_SECONDS)
            today = self.desk.journal.today()
            for order in [o for o in self.held() if o.day and o.day != today]:
                await withdraw(self.desk, order, "its trading day ended before the shares were authorised")
            try:
                holdings = await self.desk.client.holdings()
            except errors.KiteError as e:
                log.info("holdings not read for the held sells: %s", e, extra={"user_id": self.desk.user_id})
                continue
            authorised = {(h.exchange, h.tradingsymbol): h.authorised_quantity for h in holdings}
            for order in self.held():
                before = self.seen.get(order.tag)  # None: held before a restart, so try it once more
                if before is None or authorised.get(order.instrument, 0) > before:
                    await self._release(order)

    async def _release(self, order: Order) -> None:
        desk = self.desk
        async with desk.lock:
            if order.state is not OrderState.HELD:  # withdrawn meanwhile
                return
            self.seen.pop(order.tag, None)
            log.info("order %s: the depository authorised it, sending it now", order.tag,
                     extra={"user_id": desk.user_id})
            held = desk.tracker.held(order.strategy_id, order.exchange, order.tradingsymbol)[0]
            if desk.protector is None or order.sign * held >= 0:  # closes no position of kta's
                await placing.place(desk, order.request(), order.strategy_id)
                return
            # an exit: the position kept its GTT while the sell was held; it shrinks first, as for any exit
            key = position_key(order.strategy_id, order.exchange, order.tradingsymbol)
            async with desk.protector.holding([key]):
                if not await desk.protector.make_room(order.strategy_id, order.exchange, order.tradingsymbol,
                                                      min(order.quantity, abs(held))):
                    log.warning("held order %s not sent yet: the position's GTT could not be resized first",
                                order.tag, extra={"user_id": desk.user_id})
                    return  # still HELD, tried again on the next look at the holdings
                await placing.place(desk, order.request(), order.strategy_id)


async def withdraw(desk: Desk, order: Order, reason: str) -> None:
    """Give a HELD order up: it was never at the broker and is never sent."""
    await placing.cancel(desk, order, reason)


def started(desk: Desk) -> HeldSells:
    desk.held_sells = HeldSells(desk)
    desk.held_sells.watch()
    return desk.held_sells
