"""Open positions marked to market on every tick of their instruments, so the kill switch sees a
loss as it happens rather than at the next 30 s broker poll, and their protection sees its target. Work per tick is O(holders of the
token): the tracker keeps running totals. The instruments' ticks are asked of the ticker worker
(full mode, so no strategy's subscription is downgraded) when a position opens — once for a user's token while the
ticker keeps it (it keeps what it was asked until the user's Stop: ``stopped``), asked again after ``ASK_AGAIN``
(a ticker that lost it heals): a strategy reopening a position was a request to the ticker, and the ticker's save
of its state, every time (issue #18)."""

from __future__ import annotations

import logging
import time

import msgspec

from execution_worker.engine import Desk
from shared import messages as m
from shared import subjects
from shared.bus import Bus
from shared.exchange_clock import ExchangeClock

log = logging.getLogger("kta.marks")
ASK_AGAIN = 300.0  # seconds after which a token the ticker said it streams for a user is asked of it again


class TickMarks:
    def __init__(self, bus: Bus, clock: ExchangeClock | None = None) -> None:
        self.bus = bus
        self.clock = clock or ExchangeClock()
        self.holders: dict[int, dict[str, Desk]] = {}  # token -> user -> desk holding it
        self.subs: dict[int, object] = {}  # token -> NATS subscription
        self.asked: dict[tuple[str, int], float] = {}  # (user, token) -> when the ticker said it streams it

    async def track(self, desk: Desk) -> None:
        """Follow exactly the tokens ``desk`` holds now (called on opening a desk and after fills)."""
        held = desk.tracker.open_tokens() - {0}
        new = []
        for token in held:
            users = self.holders.setdefault(token, {})
            if desk.user_id not in users:
                users[desk.user_id] = desk
                new.append(token)
            if token not in self.subs:
                self.subs[token] = await self.bus.subscribe(subjects.ticks(token), m.Tick, self.on_tick)
        for token in [t for t, users in self.holders.items() if desk.user_id in users and t not in held]:
            await self._drop(token, desk.user_id)
        now = time.monotonic()
        ask = sorted(t for t in new if now - self.asked.get((desk.user_id, t), -ASK_AGAIN) >= ASK_AGAIN)
        if ask:
            self.bus.spawn(self._ask_ticker(desk.user_id, ask), name=f"marks-subscribe:{desk.user_id}")

    async def forget(self, user_id: str) -> None:
        for token in [t for t, users in self.holders.items() if user_id in users]:
            await self._drop(token, user_id)
        self.stopped(user_id)

    def stopped(self, user_id: str) -> None:
        """The user's Stop: the ticker dropped every token it streamed for them — ask again for the next."""
        for key in [k for k in self.asked if k[0] == user_id]:
            del self.asked[key]

    async def on_tick(self, tick: m.Tick, msg) -> None:
        self.clock.heard(tick.exchange_timestamp)
        price = m.to_paise(tick.last_price)
        if price <= 0:
            return
        for desk in list(self.holders.get(tick.instrument_token, {}).values()):
            desk.tracker.mark(tick.instrument_token, price)
            if desk.protector is not None:
                desk.protector.ticks.on_tick(tick.instrument_token, price)
            await desk.feed_pnl("tick")

    async def _drop(self, token: int, user_id: str) -> None:
        users = self.holders.get(token, {})
        users.pop(user_id, None)
        if not users:
            self.holders.pop(token, None)
            sub = self.subs.pop(token, None)
            if sub is not None:
                await sub.unsubscribe()

    async def _ask_ticker(self, user_id: str, tokens: list[int]) -> None:
        try:
            reply = await self.bus.request(subjects.cmd(user_id, "ticker", "subscribe"),
                                           m.Subscribe(tokens=tokens, mode=m.TickMode.FULL), timeout=5)
        except Exception as e:  # noqa: BLE001 - the 30 s broker poll still marks the positions
            log.info("ticks of %s not subscribed for %s: %r", tokens, user_id, e)
            return
        if isinstance(reply, m.Ok):
            now = time.monotonic()
            self.asked.update(((user_id, t), now) for t in tokens)
        else:
            log.info("ticks of %s not subscribed for %s: %s", tokens, user_id, reply.message)


async def carried_marks(desk: Desk, broker: list[m.Position]) -> list[m.Position]:
    """kta's delivery positions that the broker's net positions do not list (Kite's CNC positions are the day's: a
    position carried overnight sits in the holdings), marked at the last price as the broker's rows are: P&L
    since cost, on kta's own lots (the dashboard showed no price and no P&L for them)."""
    listed = {(p.exchange, p.tradingsymbol, p.product) for p in broker if p.quantity}
    mine = [p for p in desk.tracker.positions()
            if p.quantity and p.product == "CNC" and (p.exchange, p.tradingsymbol, p.product) not in listed]
    if not mine:
        return []
    prices = await desk.prices.prices(desk.client, sorted({f"{p.exchange}:{p.tradingsymbol}" for p in mine}))
    out = []
    for p in mine:
        last = prices.get(f"{p.exchange}:{p.tradingsymbol}") or p.last_price
        pnl = (last - p.average_price) * p.quantity if last else 0
        out.append(msgspec.structs.replace(p, last_price=last, unrealised=pnl, pnl=pnl))
    return out
