"""The GTT side of protection (``shared.trading.protection_gtt``): a CNC or NRML position's one GTT OCO
at the broker, created from the entry's fill, modified when the quantity changes, deleted when the
position closes or an exit takes it over, and — every reconciliation pass, so at the first pass of a
session and of a restarted worker too — checked against the broker's GTT book: present, active and
matching, else re-created. A GTT that fired has its order adopted into the order book as the
position's protective order (journaled, its fills told to the strategy as protective fills), and a
GTT that vanished without kta (deleted in Kite, expired) puts the instrument in doubt until the
positions cross-check has compared kta's book with the broker's, as a stop cancelled outside kta does."""

from __future__ import annotations

import logging
import time

from execution_worker.engine import Desk
from shared.kite import errors
from shared.kite.models import Gtt
from shared.kite.models import Order as KiteOrder
from shared.messages import (
    OrderRequest,
    OrderType,
    Product,
    TransactionType,
    Variety,
    to_paise,
)
from shared.trading import planning
from shared.trading.order import SubmitLost
from shared.trading.protection import Protection
from shared.trading.protection_gtt import (
    GttSpec,
    fired_order,
    gtt_id_of,
    matches,
    spec,
    specs,
)

log = logging.getLogger("kta.protect")
ACTIVE = "active"


class GttKeeper:
    def __init__(self, desk: Desk, protector, slippage_pct: float) -> None:
        self.desk = desk
        self.protector = protector
        self.slippage_pct = slippage_pct
        self.known: dict[int, Gtt] = {}  # trigger id -> the broker's last word on it
        self.read_at = 0.0  # monotonic start of the last complete read of the GTT book (0: none yet)
        self.asking: set[GttSpec] = set()  # creations whose answer is awaited now
        self.lost: dict[GttSpec, float] = {}  # creations whose answer was lost -> monotonic end of the call

    # ---- the broker's GTT book ----------------------------------------------------------------

    async def refresh(self) -> bool:
        """Read every trigger once (one request for all positions): each pass starts from the broker's truth."""
        started = time.monotonic()
        try:
            self.known = {g.id: g for g in await self.desk.client.gtts()}
        except errors.KiteError as e:
            log.warning("GTT book unread: %s", e, extra={"user_id": self.desk.user_id})
            return False
        self.read_at = started
        return True

    def _resolve_asked(self, p: Protection) -> None:
        """``p``'s creations whose answer kta never had (lost, or cut off by a crash): each is the broker's
        active GTT on the same instrument with the same type, triggers and legs that no protection claims
        (adopted: GTTs carry no tag, these are kta's own words), or — when a read of the GTT book that began
        after the call ended shows none — was never made. A GTT the trader made in Kite matches no ask and
        is never touched."""
        if not p.gtt_asked or not self.read_at:
            return
        claimed = {i for plan in self.protector.plans.values() for i in plan.gtt_ids}
        left = []
        for ask in p.gtt_asked:
            if ask in self.asking or self.lost.get(ask, 0.0) > self.read_at:
                left.append(ask)  # in flight, or lost after the last read began: the next read decides
                continue
            self.lost.pop(ask, None)
            g = next((g for g in self.known.values() if g.id not in claimed and g.status == ACTIVE
                      and (g.condition.exchange, g.condition.tradingsymbol) == (p.exchange, p.tradingsymbol)
                      and matches(g, ask)), None)
            if g is None:
                log.warning("GTT asked for %s (%s %d at %s) is not at the broker: it was never made", p.key,
                            ask.side.value, ask.quantity, ask.trigger_values, extra={"user_id": self.desk.user_id})
                continue
            claimed.add(g.id)
            p.gtt_ids = [*p.gtt_ids, g.id]
            log.warning("GTT %d found at the broker for %s: the one whose answer was lost, adopted", g.id, p.key,
                        extra={"user_id": self.desk.user_id})
        if left != p.gtt_asked:
            p.gtt_asked = left
            self.desk.journal.save_protection(p)

    async def _read(self, gtt_id: int) -> Gtt | None:
        try:
            g = await self.desk.client.gtt(gtt_id)
        except errors.InputException:
            self.known.pop(gtt_id, None)
            return None
        self.known[g.id] = g
        return g

    async def last_word(self, gtt_id: int) -> tuple[Gtt | None, bool]:
        """(the broker's last word on a trigger — read now if not since it was written —, whether it could be
        read); (None, True) when it is gone."""
        g = self.known.get(gtt_id)
        if g is not None:
            return g, True
        try:
            return await self._read(gtt_id), True
        except errors.KiteError:
            return None, False

    # ---- one position ----------------------------------------------------------------------------

    async def _active(self, p: Protection) -> list[Gtt]:
        """``p``'s GTTs still active at the broker (as last read); the ones that ended are dealt with."""
        out = []
        for gtt_id in list(p.gtt_ids):
            g = self.known.get(gtt_id) or await self._read(gtt_id)
            if g is not None and g.status == ACTIVE:
                out.append(g)
            else:
                await self._ended(p, gtt_id, g)
        return out

    async def _wanted(self, p: Protection, held: int, closing: int) -> tuple[list[GttSpec], int]:
        k = f"{p.exchange}:{p.tradingsymbol}"
        last = (await self.desk.prices.prices(self.desk.client, [k])).get(k, 0)
        return specs(p, held, closing, last, self.desk.inst(p.exchange, p.tradingsymbol), self.slippage_pct), last

    def _matches(self, p: Protection, g: Gtt, want: GttSpec) -> bool:
        """``g`` is ``want`` as it would have been planned at the price ``g`` was placed at."""
        again = spec(p, want.quantity if want.side is TransactionType.SELL else -want.quantity,
                     to_paise(g.condition.last_price), self.desk.inst(p.exchange, p.tradingsymbol), self.slippage_pct)
        return matches(g, again)

    def _position(self, p: Protection) -> tuple[int, int]:
        """(held, what working orders may still close: exits and the orders its GTTs fired), read after
        ``_active`` — which may have adopted a fired order and journaled its fills."""
        _, _, _, held, closing, working = self.protector._position(p.key)  # closing counts owed fills too
        return held, closing + sum(o.remaining for o in working)

    async def sync(self, p: Protection, may_create: bool) -> None:
        """Bring ``p``'s GTTs in line with what is held less what working exits and the orders its GTTs
        fired may still close: modified where they differ, deleted where too many, created where missing
        (unless the position is in doubt)."""
        self._resolve_asked(p)
        have = await self._active(p)
        wanted, last = await self._wanted(p, *self._position(p))
        for g in have[len(wanted):]:
            await self.delete(p, g.id, "nothing left to protect" if not wanted else "the position shrank")
        for i, want in enumerate(wanted):
            if i < len(have):
                if not self._matches(p, have[i], want):
                    await self._write(p, want, last, have[i].id)
            elif may_create and not p.gtt_asked:  # an answer still unknown: never a second GTT beside it
                await self._write(p, want, last)

    async def _write(self, p: Protection, want: GttSpec, last: int, gtt_id: int = 0) -> bool:
        c = self.desk.client
        args = (want.type, p.exchange, p.tradingsymbol, [v / 100 for v in want.trigger_values], last / 100,
                want.orders(p.product))
        if not gtt_id:  # journaled before it leaves: a lost answer (or a crash) is matched to the broker's GTT
            p.gtt_asked = [*p.gtt_asked, want]
            self.desk.journal.save_protection(p)
            self.asking.add(want)
        try:
            new_id = await (c.modify_gtt(gtt_id, *args) if gtt_id else c.place_gtt(*args))
        except errors.KiteError as e:
            if not gtt_id:
                self.asking.discard(want)
                if _answer_lost(e):
                    self.lost[want] = time.monotonic()
                    log.warning("GTT for %s: the broker's answer was lost (%s): looking it up", p.key, e.message,
                                extra={"user_id": self.desk.user_id})
                    if await self.refresh():
                        self._resolve_asked(p)
                    self.protector.dirty.add(p.key)
                    return False
                p.gtt_asked = _without(p.gtt_asked, want)  # refused: the broker has no such GTT
                self.desk.journal.save_protection(p)
            if gtt_id and isinstance(e, errors.InputException):  # it fired or ended meanwhile: read it again
                self.known.pop(gtt_id, None)
                self.protector.dirty.add(p.key)
                return False
            log.warning("GTT of %s refused: %s", p.key, e.message, extra={"user_id": self.desk.user_id})
            if isinstance(e, errors.InputException):  # the broker's refusal: corrected once, then close it
                await self.protector.rejected_stop(p.key, e.message)
                self.protector.dirty.add(p.key)
            return False
        self.known.pop(new_id, None)  # read afresh when next needed
        if not gtt_id:
            self.asking.discard(want)
            p.gtt_asked = _without(p.gtt_asked, want)
            if self.desk.edis is not None and p.product == "CNC":  # its stop may need the depository's TPIN today
                self.desk.edis.soon()
        if p.mode in ("target", "stopped"):  # a fired leg's order ended unfilled: the new GTT watches both again
            p.mode = "stop"
        if new_id not in p.gtt_ids:
            p.gtt_ids = [i for i in p.gtt_ids if i != gtt_id] + [new_id]
        self.desk.journal.save_protection(p)
        log.info("GTT %d %s for %s: %s %d at %s (limits %s)", new_id, "modified" if gtt_id else "placed", p.key,
                 want.side.value, want.quantity, want.trigger_values, want.prices, extra={"user_id": self.desk.user_id})
        return True

    def _forget(self, p: Protection, gtt_id: int) -> None:
        self.known.pop(gtt_id, None)
        p.gtt_ids = [i for i in p.gtt_ids if i != gtt_id]
        self.desk.journal.save_protection(p)

    async def delete(self, p: Protection, gtt_id: int, reason: str) -> bool:
        """Take one of ``p``'s GTTs off the broker. False when it could not be confirmed gone."""
        try:
            await self.desk.client.delete_gtt(gtt_id)
        except errors.InputException:  # not active any more (fired, expired): what it did is read now
            g = await self._read(gtt_id)
            if g is not None and g.status == ACTIVE:
                return False
            await self._ended(p, gtt_id, g)
            return True
        except errors.KiteError as e:
            log.warning("GTT %d of %s not deleted: %s", gtt_id, p.key, e.message, extra={"user_id": self.desk.user_id})
            return False
        log.info("GTT %d of %s deleted: %s", gtt_id, p.key, reason, extra={"user_id": self.desk.user_id})
        self._forget(p, gtt_id)
        return True

    async def delete_all(self, p: Protection, reason: str) -> bool:
        return all([await self.delete(p, gtt_id, reason) for gtt_id in list(p.gtt_ids)])

    async def shrink(self, p: Protection, quantity: int) -> bool:
        """An exit of ``quantity`` is about to be placed: the GTTs first cover only what the exit leaves
        (modified, never created; deleted if nothing), so the two can never sell the same shares. False if
        that failed."""
        have = await self._active(p)
        held, closing = self._position(p)
        wanted, last = await self._wanted(p, held, closing + quantity)
        ok = True
        for i, g in enumerate(have):
            if i >= len(wanted):
                ok = await self.delete(p, g.id, "an exit closes the position") and ok
            elif not self._matches(p, g, wanted[i]) and not await self._write(p, wanted[i], last, g.id):
                ok = await self.delete(p, g.id, "an exit closes part of the position and the GTT could not be "
                                                "resized") and ok
        return ok

    async def _ended(self, p: Protection, gtt_id: int, g: Gtt | None) -> None:
        """The trigger is no longer active: a fired one's order joins the book; any other end (deleted in
        Kite, expired) leaves the position in doubt until the cross-check has seen the broker's."""
        if g is not None and g.status == "triggered":
            _, order_id, rejection = fired_order(g)
            if order_id and self.desk.book.by_order_id(order_id) is None:
                await self._adopt_fired(order_id)
            self._forget(p, gtt_id)
            if not order_id:
                log.warning("GTT %d of %s fired but its order failed: %s", gtt_id, p.key, rejection,
                            extra={"user_id": self.desk.user_id})
                await self.protector.rejected_stop(p.key, rejection or "the GTT's order failed")
            return
        log.warning("GTT %d of %s is %s (not by kta): no new one until the broker's position is checked", gtt_id,
                    p.key, g.status if g is not None else "gone", extra={"user_id": self.desk.user_id})
        self.protector.in_doubt.add((p.exchange, p.tradingsymbol))
        self._forget(p, gtt_id)

    async def _adopt_fired(self, order_id: str) -> None:
        try:
            history = await self.desk.client.order_history(order_id)
        except errors.KiteError as e:  # the reconciliation pass lists it (by its meta) in any case
            log.warning("GTT order %s unread: %s", order_id, e, extra={"user_id": self.desk.user_id})
            return
        if history:
            await self.desk.on_broker(history[-1])

    # ---- a fired leg's order, seen at the broker --------------------------------------------------

    def owner(self, kite_order: KiteOrder) -> tuple[Protection, int, int] | None:
        """(protection, trigger id, leg) of an order a kta GTT placed (found by the ``{"gtt": id}`` in its
        meta, or by the trigger's result), else None."""
        gtt_id = gtt_id_of(kite_order.meta)
        if not gtt_id:
            gtt_id = next((g.id for g in self.known.values() if fired_order(g)[1] == kite_order.order_id), 0)
        p = next((p for p in self.protector.plans.values() if gtt_id in p.gtt_ids), None) if gtt_id else None
        if p is None:
            return None
        g = self.known.get(gtt_id)
        leg = fired_order(g)[0] if g is not None else -1
        return p, gtt_id, leg

    def adopt(self, kite_order: KiteOrder) -> object | None:
        """The book's order for a GTT's fired leg (created on first sight), or None if not kta's."""
        found = self.owner(kite_order)
        if found is None:
            return None
        p, gtt_id, leg = found
        kind = self._kind(p, kite_order, leg)
        tag = planning.make_tag(f"gtt|{gtt_id}", kind, max(0, leg))
        existing = self.desk.book.get(tag)
        if existing is not None:
            return existing
        req = OrderRequest(user_id=self.desk.user_id, exchange=kite_order.exchange,
                           tradingsymbol=kite_order.tradingsymbol, instrument_token=kite_order.instrument_token,
                           transaction_type=TransactionType(kite_order.transaction_type),
                           order_type=OrderType(kite_order.order_type or "LIMIT"), quantity=max(1, kite_order.quantity),
                           product=Product(kite_order.product), variety=Variety(kite_order.variety or "regular"),
                           price=to_paise(kite_order.price), tag=tag, kind=kind, signal_id=p.signal_id)
        order = self.desk.new_order(req, p.strategy_id)
        order.apply(SubmitLost(reason=f"placed by GTT {gtt_id} when its {kind} triggered"))
        if kind == "target" and p.mode == "stop":  # its LIMIT may wait: the price back at the stop moves it there
            p.mode = "target"
        self._forget(p, gtt_id)  # it fired: done (saves p)
        log.info("GTT %d fired: %s order %s of %s joins the book", gtt_id, kind, kite_order.order_id, p.key,
                 extra={"user_id": self.desk.user_id})
        return order

    @staticmethod
    def _kind(p: Protection, kite_order: KiteOrder, leg: int) -> str:
        if not p.target:
            return "stop_loss"
        price = to_paise(kite_order.price)
        return "target" if abs(price - p.target) < abs(price - p.stop) else "stop_loss"


def _answer_lost(e: errors.KiteError) -> bool:
    """The call may have taken effect: no answer (a timeout, a dropped connection), a garbled one or the
    broker's 5xx — not a refusal, a 429 or a call that never left (those made nothing)."""
    if isinstance(e, (errors.TooManyRequests, errors.NotSent, errors.EgressUnavailable)):
        return False
    return isinstance(e, (errors.NetworkException, errors.DataException)) or e.status >= 500


def _without(asks: list[GttSpec], done: GttSpec) -> list[GttSpec]:
    """``asks`` less one ``done`` (the slices of one position can ask for identical GTTs)."""
    i = asks.index(done) if done in asks else -1
    return asks if i < 0 else asks[:i] + asks[i + 1:]
