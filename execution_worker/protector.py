"""Every position protected, never margined twice: the execution side of ``shared.trading.protection``.

After every fill, every protective order that ends, every reconciliation pass and on opening a desk,
the position's stop is brought in line with what is held (one SL at the broker, freeze-sliced,
following partial fills and slices). Ticks of held instruments watch the target and a triggered stop
the market ran past (``tick_watch.py``). A CNC or NRML
position is protected by a GTT OCO instead, which outlives the session (``gtt_keeper.py``). A
rejected stop is placed once more with a corrected trigger; rejected again, the position is closed
and the trader alerted. An exit or a flatten holds a position's protection back while it clears the
stop and places its own orders, so the two never both stand."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import time as day_time

import msgspec

from execution_worker import placing
from execution_worker.alerts import alert
from execution_worker.engine import Desk
from execution_worker.gtt_keeper import GttKeeper
from execution_worker.tick_watch import TickWatch
from shared.messages import Position, ProtectionStatus, Signal
from shared.trading import planning
from shared.trading.order import Applied, Order, OrderState, is_terminal
from shared.trading.protection import (
    Cancel,
    Modify,
    Place,
    Protection,
    corrected_stop,
    desired,
    plan,
    position_key,
)
from shared.trading.protection_gtt import uses_gtt
from shared.trading.protection_status import gtt_guard, judge, option_cover

log = logging.getLogger("kta.protect")
SETTLING_FROM = day_time(15, 20)  # on its expiry day, by the exchange's clock: a contract's last protection placed
DEPOSITORY = "authorisation at depository"  # Kite's 428 ("N quantity needs authorisation at depository")


class Protector:
    def __init__(self, desk: Desk, slippage_pct: float) -> None:
        self.desk = desk
        self.slippage_pct = slippage_pct
        self.plans: dict[str, Protection] = {p.key: p for p in desk.journal.protections(desk.user_id)}
        self.locks: dict[str, asyncio.Lock] = {}
        self.dirty: set[str] = set()
        self.held_back: dict[str, int] = {}  # key -> holders (an exit or flatten in progress)
        self.rejecting: dict[str, int] = {}  # key -> its rejected stops not yet handled: no stop placed meanwhile
        self.flatten_due: set[str] = set()  # stop failed twice while an exit or square-off held it: closed if it stays open
        # instruments whose stop the broker cancelled on its own (end of day, its square-off, the trader
        # in Kite): the position may be gone too, so no new stop until the positions cross-check has
        # compared kta's book with the broker's (a stop for a position the broker no longer holds would open one)
        self.in_doubt: set[tuple[str, str]] = set()
        self.gtts = GttKeeper(desk, self, slippage_pct)
        self.ticks = TickWatch(self)  # the target, and a stop the market ran past

    # ---- what the strategies ask for ---------------------------------------------------------

    def register(self, sig: Signal) -> None:
        """An accepted entry with a stop or a target: the position's protection from now on."""
        if sig.intent != "entry" or not (sig.stop_loss or sig.target):
            return
        key = position_key(sig.strategy_id, sig.exchange.value, sig.tradingsymbol)
        p = self.plans.get(key) or Protection(user_id=self.desk.user_id, strategy_id=sig.strategy_id,
                                              exchange=sig.exchange.value, tradingsymbol=sig.tradingsymbol)
        p.instrument_token, p.product, p.signal_id = sig.instrument_token, sig.product.value, sig.id
        p.stop, p.target, p.retried, p.mode = sig.stop_loss or 0, sig.target or 0, False, "stop"
        self.plans[key] = p
        self.desk.journal.save_protection(p)

    @contextlib.asynccontextmanager
    async def holding(self, keys: list[str]):
        """Hold these positions' protection back (an exit or a flatten is clearing their stops and
        placing its own orders); on leaving, each is brought in line again."""
        for key in keys:
            self.held_back[key] = self.held_back.get(key, 0) + 1
        try:
            yield
        finally:
            for key in keys:
                self.held_back[key] -= 1
                if not self.held_back[key]:
                    del self.held_back[key]
            for key in keys:
                await self.sync(key)

    async def make_room(self, strategy_id: str, exchange: str, symbol: str, quantity: int) -> bool:
        """An exit of ``quantity`` is about to be placed (its caller holds the position's protection
        back): a GTT first shrinks to what the exit leaves, or is deleted, so the two never sell the same
        shares. False when that could not be done (the exit must not go out). An SL's exit cancels it."""
        key = position_key(strategy_id, exchange, symbol)
        p = self.plans.get(key)
        if p is None or not uses_gtt(p.product) or not p.gtt_ids:
            return True
        async with self.locks.setdefault(key, asyncio.Lock()):
            return await self.gtts.shrink(p, quantity)

    async def clear(self, keys: list[str]) -> set[str]:
        """A square-off: these positions' GTTs come off the broker before the flatten's orders go in.
        Returns the keys whose GTT could not be confirmed gone (not to be flattened: it may still fire)."""
        stuck = set()
        for key in keys:
            p = self.plans.get(key)
            if p is not None and p.gtt_ids:
                async with self.locks.setdefault(key, asyncio.Lock()):
                    if not await self.gtts.delete_all(p, "square-off"):
                        stuck.add(key)
        return stuck

    # ---- what the trader sees ------------------------------------------------------------------

    async def status(self) -> list[ProtectionStatus]:
        """What protects every open position now (the positions snapshot carries it to the dashboard)."""
        out = []
        held = [p for p in self.desk.tracker.positions() if p.quantity]
        bounded = option_cover(held, self.desk.inst)
        for position in held:
            key = position_key(position.strategy_id, position.exchange, position.tradingsymbol)
            plan = self.plans.get(key)
            gtts = [gtt_guard(i, *await self.gtts.last_word(i)) for i in (plan.gtt_ids if plan else [])]
            _, _, _, _, closing, working = self._position(key)
            cover = "settling" if self._settling(position.exchange, position.tradingsymbol) else \
                bounded.get((position.strategy_id, position.exchange, position.tradingsymbol), "")
            status = judge(position, plan, gtts, working, closing,
                           (position.exchange, position.tradingsymbol) in self.in_doubt, cover)
            link = self.desk.edis.link(position.exchange, position.tradingsymbol) if self.desk.edis else ""
            out.append(msgspec.structs.replace(status, authorise=link) if link else status)
        return out

    # ---- keeping it in line -------------------------------------------------------------------

    async def on_order(self, order: Order, applied: Applied) -> None:
        """Desk.on_change: an order of some position filled or ended (as this event left it: ``applied.state``)."""
        key = position_key(order.strategy_id, order.exchange, order.tradingsymbol)
        state = applied.state or order.state
        if order.is_protective and state is OrderState.CANCELLED and not order.cancel_reason \
                and order.instrument not in self.in_doubt:
            log.warning("stop %s of %s cancelled outside kta (%s): no new stop until the broker's position is "
                        "checked", order.order_id, key, order.status_message, extra={"user_id": self.desk.user_id})
            self.in_doubt.add(order.instrument)
        if applied.filled or is_terminal(state):
            # its own task: the user's order updates are handled one after the other, and none of them (the next
            # fill, its stop) waits for this stop's broker round trip (syncs of one key coalesce: see sync)
            self.desk.bus.spawn(self.sync(key), name=f"sync:{key}")

    def on_applied(self, order: Order, applied: Applied) -> None:
        """Desk.on_applied, the moment an event is applied (no await in between): a stop the broker rejected is
        marked at once — a sync re-run before the reaction came placed the same trigger again, rejected twice,
        the position flattened — and handled in its own task (the caller may hold the position's lock: a sync
        whose placement or tag lookup met the rejection; and the order-update feed never waits on it)."""
        if order.kind == "stop_loss" and applied.state is OrderState.REJECTED and applied.state_changed:
            key = position_key(order.strategy_id, order.exchange, order.tradingsymbol)
            self.rejecting[key] = self.rejecting.get(key, 0) + 1
            self.desk.bus.spawn(self._rejected(key, order), name=f"rejected:{key}")

    async def sync(self, key: str) -> None:
        """Bring one position's stop in line; a request while one runs is coalesced into a re-run."""
        if key in self.held_back:
            return
        lock = self.locks.setdefault(key, asyncio.Lock())
        if lock.locked():
            self.dirty.add(key)
            return
        async with lock:
            while True:
                self.dirty.discard(key)
                await self._sync(key)
                if key not in self.dirty:
                    return

    async def confirmed(self, instruments: set[tuple[str, str]]) -> None:
        """The cross-check found kta's book equal to the broker's for these instruments: their stops
        may be placed again."""
        cleared = self.in_doubt & instruments
        self.in_doubt -= cleared
        for key in sorted(k for k in set(self.plans) if tuple(k.split("|", 1)[1].split(":", 1)) in cleared):
            await self.sync(key)

    async def sync_all(self) -> None:
        if any(uses_gtt(p.product) and (p.gtt_ids or p.stop) for p in self.plans.values()):
            await self.gtts.refresh()  # the broker's GTT book, once a pass: carried positions confirmed protected
        keys = set(self.plans) | {position_key(p.strategy_id, p.exchange, p.tradingsymbol)
                                  for p in self.desk.tracker.positions() if p.quantity}
        keys |= {position_key(o.strategy_id, o.exchange, o.tradingsymbol) for o in self.desk.book.working()
                 if o.is_protective}
        for key in sorted(keys):
            await self.sync(key)

    def _position(self, key: str) -> tuple[str, str, str, int, int, list[Order]]:
        strategy_id, instrument = key.split("|", 1)
        exchange, symbol = instrument.split(":", 1)
        held = self.desk.tracker.held(strategy_id, exchange, symbol)[0]
        mine = self.desk.book.working_for(strategy_id, exchange, symbol)
        # a HELD exit (a delivery sell waiting for the depository's TPIN) is not at the broker and may never be: it
        # closes nothing, so the position keeps its GTT until it is released (HeldSells makes room then)
        closing = sum(o.remaining for o in mine
                      if not o.is_protective and o.sign * held < 0 and o.state is not OrderState.HELD)
        # and what closing orders filled at the broker that the journal (so ``held``) lacks yet: a flatten or a stop
        # that filled is not working any more, and a stop placed for ``held`` meanwhile stood on a closed position
        # (soak seed 13: the kill switch's square-off let go of TCS with its flatten's fills owed; the new stop
        # filled at once, 0 -> +12). The fills' journaling syncs the position again (on_order)
        closing += sum(o.unjournaled for o in self.desk.book.owing((strategy_id, exchange, symbol))
                       if o.sign * held < 0)
        return strategy_id, exchange, symbol, held, closing, [o for o in mine if o.is_protective]

    async def _sync(self, key: str) -> None:
        if key in self.rejecting:  # _rejected brings it in line once the retry is decided
            return
        strategy_id, exchange, symbol, held, closing, working = self._position(key)
        p = self.plans.get(key)
        if key in self.flatten_due and (not held or p is None or p.mode != "failed" or not closing):
            self.flatten_due.discard(key)
            if held and p is not None and p.mode == "failed":  # what held it back ended and left it open
                await self._flatten(p, held)
                return
        if p is None:
            if working and not held:  # a stop left over from before this desk knew the position
                for order in working:
                    await placing.cancel(self.desk, order, "nothing left to protect")
            return
        settling = bool(held) and self._settling(exchange, symbol)
        if uses_gtt(p.product):
            await self.gtts.sync(p, (exchange, symbol) not in self.in_doubt and not settling)
            return
        generation = p.generation
        actions = plan(p, held, closing, working, self.desk.inst(exchange, symbol), self.slippage_pct)
        if (exchange, symbol) in self.in_doubt or settling:
            actions = [a for a in actions if not isinstance(a, Place)]
        if p.generation != generation:
            self.desk.journal.save_protection(p)
        await self.carry_out(p, actions)

    def _settling(self, exchange: str, symbol: str) -> bool:
        """A contract at its expiry's close or past it (from SETTLING_FROM: the exchange's clock as kta hears it may
        lag a paper broker's roll): the broker settles it, and a new GTT or stop would be refused ("Instrument has
        expired") and, refused twice, close with an 'unprotected' alert a position the settlement closes anyway."""
        inst = self.desk.inst(exchange, symbol) or self.desk.journal.contract(exchange, symbol)
        now = self.desk.exchange.now_dt()
        return inst is not None and inst.expiry is not None and (now.date(), now.time()) >= (inst.expiry, SETTLING_FROM)

    async def carry_out(self, p: Protection, actions) -> None:
        for action in actions:
            if isinstance(action, Place):
                log.info("stop for %s: %s %d at %s", p.key, action.request.transaction_type.value,
                         action.request.quantity, action.request.trigger_price, extra={"user_id": self.desk.user_id})
                await placing.place(self.desk, action.request, p.strategy_id)
            elif isinstance(action, Cancel):
                await placing.cancel(self.desk, action.order, action.reason)
            elif await placing.modify(self.desk, action.order, quantity=action.quantity or None,
                                      price=action.price or None, trigger_price=action.trigger_price or None,
                                      order_type=action.order_type or None):
                # refused (25 modifications, or already final): replace it with a fresh stop
                await placing.cancel(self.desk, action.order, "could not be modified: replaced")

    async def _rejected(self, key: str, order: Order) -> None:
        """A stop the exchange refused: once more with a corrected trigger, then flatten and alert
        (under the position's lock, so no sync places a stop meanwhile); then the position in line."""
        try:
            async with self.locks.setdefault(key, asyncio.Lock()):
                await self.rejected_stop(key, order.status_message)
        finally:
            self.rejecting[key] -= 1
            if not self.rejecting[key]:
                del self.rejecting[key]
        await self.sync(key)

    async def rejected_stop(self, key: str, message: str) -> None:
        """The broker refused the position's stop (an SL order, a GTT, a GTT's fired order): corrected
        once, then the position is closed and the trader alerted — at once when the depository refused a fired
        GTT's sale (eDIS): its close waits HELD for the authorisation and goes the moment it is given. The caller
        holds the position's lock."""
        p = self.plans.get(key)
        if p is None or p.mode == "failed":
            return
        held = self.desk.tracker.held(p.strategy_id, p.exchange, p.tradingsymbol)[0]
        if not held:
            return
        depository = DEPOSITORY in message  # eDIS: no trigger is wrong, the shares may not leave the demat account
        if not p.retried and not depository:
            k = f"{p.exchange}:{p.tradingsymbol}"
            last = await self.desk.prices.now(self.desk.client, k)  # fresh: the cached price may be what failed
            lower, upper = (await self.desk.prices.circuits(self.desk.client, [k])).get(k, (0, 0))
            stop = corrected_stop(p, held, last, lower, upper, self.desk.inst(p.exchange, p.tradingsymbol),
                                  self.slippage_pct)
            log.warning("stop of %s rejected (%s): retrying once at %s", key, message, stop,
                        extra={"user_id": self.desk.user_id})
            p.stop, p.retried = stop, True
            self.desk.journal.save_protection(p)
            return
        p.mode = "failed"
        p.generation += 1  # the flatten's tag is this episode's own: a later position's flatten is a new order
        self.desk.journal.save_protection(p)
        title = (f"{p.tradingsymbol}: the stop fired but the depository refused the sale (eDIS): selling once you "
                 f"authorise" if depository else f"{p.tradingsymbol}: stop-loss rejected twice, closing the position")
        await alert(self.desk.bus, self.desk.user_id, "unprotected", title,
                    f"{p.strategy_id} holds {held} {p.tradingsymbol}; the broker said: {message}",
                    severity="critical", key=f"unprotected:{key}:{p.generation}", clock=self.desk.exchange)
        if key in self.held_back:  # an exit or a square-off is closing it now: a flatten beside it would reverse it
            log.warning("%s: left to the exit or square-off in progress (closed by its sync if it stays open)", key,
                        extra={"user_id": self.desk.user_id})
            self.flatten_due.add(key)
            return
        await self._flatten(p, held)

    async def _flatten(self, p: Protection, held: int) -> None:
        """Close a position whose stop failed (one order per episode: the generation's tag)."""
        key = p.key
        position = Position(tradingsymbol=p.tradingsymbol, exchange=p.exchange, instrument_token=p.instrument_token,
                            product=p.product, quantity=held, strategy_id=p.strategy_id)
        inst = self.desk.inst(p.exchange, p.tradingsymbol)
        price = self.desk.prices.known(f"{p.exchange}:{p.tradingsymbol}")
        for req in planning.closing_request(self.desk.user_id, position, "flatten", f"unprotected|{key}|{p.generation}",
                                            0, inst, self.desk.market_protection):
            await placing.place(self.desk, planning.marketable(req, inst, price), p.strategy_id)


def started(desk: Desk, slippage_pct: float) -> Protector:
    """A desk's protector, wired to its order changes. Every position is brought in line by the desk's
    first reconciliation pass (``live.Desks._loop``), not before: after a restart the journal may lack
    fills the broker already has (an exit that filled while no worker ran), and a stop placed from
    that stale book would open a position."""
    protector = Protector(desk, slippage_pct)
    desk.protector = protector
    desk.on_change = protector.on_order
    desk.on_applied = protector.on_applied
    return protector
