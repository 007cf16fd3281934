"""Ticks of protected positions (``Protector.plans``): a target reached — the stop becomes a LIMIT at the target; the
price back at the stop while that LIMIT waits — it moves to the stop's own limit; a triggered stop the market ran past
— re-priced through the market to fill. Each change is one task per position at a time, its orders carried out by
the protector."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from execution_worker import placing
from shared.messages import OrderType
from shared.trading.order import Order, OrderState
from shared.trading.protection import (Protection, chase_limit, stop_returned, stopped_actions, target_actions,
                                       target_reached)
from shared.trading.protection_gtt import uses_gtt

if TYPE_CHECKING:
    from execution_worker.protector import Protector

log = logging.getLogger("kta.protect")


class TickWatch:
    def __init__(self, protector: Protector) -> None:
        self.protector = protector
        self.desk = protector.desk
        self.busy: set[str] = set()  # keys whose target / chase modification is in flight

    def on_tick(self, token: int, price: int) -> None:
        for p in [p for p in self.protector.plans.values() if p.instrument_token == token]:
            if p.key in self.busy or p.key in self.protector.held_back:
                continue
            held = self.desk.tracker.held(p.strategy_id, p.exchange, p.tradingsymbol)[0]
            gtt = uses_gtt(p.product)  # the GTT's own target leg takes the target at the broker
            if not gtt and target_reached(p, held, price):
                self._start(p, "target", self._target(p))
            elif stop_returned(p, held, price):  # also a GTT's fired target leg still waiting
                self._start(p, "stopped", self._stopped(p, held))
            elif held and p.mode in ("stop", "stopped") and any(self._ran_past(o, price) for o in self._stops(p)):
                self._start(p, "chase", self._chase(p, price))

    def _start(self, p: Protection, what: str, work) -> None:
        """Run ``work`` on the position in the background; its ticks are not looked at again until it is done."""
        self.busy.add(p.key)

        async def then_free() -> None:
            try:
                await work
            finally:
                self.busy.discard(p.key)
        self.desk.bus.spawn(then_free(), name=f"{what}:{p.key}")

    def _stops(self, p: Protection) -> list[Order]:
        """The position's working exit at the broker: its SL order, or the order its GTT fired (either leg)."""
        kinds = ("stop_loss", "target") if uses_gtt(p.product) else ("stop_loss",)
        return [o for o in self.desk.book.working_for(p.strategy_id, p.exchange, p.tradingsymbol, *kinds)]

    @staticmethod
    def _ran_past(order: Order, price: int) -> bool:
        """Triggered (OPEN) and the market beyond its limit: as it stands it will not fill."""
        if order.state is not OrderState.OPEN or not order.price:
            return False
        return price < order.price if order.transaction_type.value == "SELL" else price > order.price

    async def _target(self, p: Protection) -> None:
        p.mode = "target"
        self.desk.journal.save_protection(p)
        log.info("target %s reached for %s: the stop becomes a limit there", p.target, p.key,
                 extra={"user_id": self.desk.user_id})
        inst = self.desk.inst(p.exchange, p.tradingsymbol)
        await self.protector.carry_out(p, target_actions(p, self._stops(p), inst))

    async def _stopped(self, p: Protection, held: int) -> None:
        p.mode = "stopped"
        self.desk.journal.save_protection(p)
        log.info("%s back at the stop %s while the target's limit waited: it exits at the stop", p.key, p.stop,
                 extra={"user_id": self.desk.user_id})
        inst = self.desk.inst(p.exchange, p.tradingsymbol)
        await self.protector.carry_out(p, stopped_actions(p, held, self._stops(p), inst, self.protector.slippage_pct))

    async def _chase(self, p: Protection, price: int) -> None:
        inst = self.desk.inst(p.exchange, p.tradingsymbol)
        for order in self._stops(p):
            if self._ran_past(order, price):  # re-priced through the market (protection.CHASE_BAND_PCT)
                await placing.modify(self.desk, order, price=chase_limit(order.transaction_type, price, inst),
                                     order_type=OrderType.LIMIT.value)
