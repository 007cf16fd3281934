"""One broker WebSocket per connected user; ticks published once per token, order updates and
connection events to JetStream."""

from __future__ import annotations

import contextlib
import logging
import time

from shared import subjects
from shared.bus import Bus
from shared.kite.sessions import LiveSession, expire_session
from shared.kite.ticker import MODE_RANK, Ticker, TokenExpired
from shared.messages import BrokerEvent, BrokerOrderUpdate, Tick

log = logging.getLogger("kta.ticker_worker")


class UserFeed:
    def __init__(self, hub: "TickerHub", live: LiveSession) -> None:
        self.hub = hub
        self.user_id = live.user_id
        self.ticker = Ticker(live.session.api_key, live.access_token, hub.ws_root, on_ticks=hub.publish_ticks,
                             on_order=self.on_order, on_event=self.on_event)
        self.task = hub.bus.spawn(self._run(), name=f"ticker:{self.user_id}")

    async def _run(self) -> None:
        try:
            await self.ticker.run()
        except TokenExpired as e:
            await expire_session(self.hub.bus, self.user_id, str(e))

    async def on_order(self, order: dict) -> None:
        key = ":".join(str(order.get(k, "")) for k in ("order_id", "status", "filled_quantity",
                                                       "exchange_update_timestamp", "quantity", "price"))
        await self.hub.bus.js_publish(subjects.order_updates(self.user_id),
                                      BrokerOrderUpdate(user_id=self.user_id, received_at=time.time_ns(), order=order),
                                      msg_id=key)

    async def on_event(self, kind: str, info: dict) -> None:
        self.hub.events[kind] = self.hub.events.get(kind, 0) + 1
        if kind == "error":
            log.warning("broker error for %s: %s", self.user_id, info.get("detail"))
            return
        ev = BrokerEvent(user_id=self.user_id, kind=kind, ts=time.time_ns(), attempt=info.get("attempt", 0),
                         gap_start=info.get("gap_start", 0), gap_end=info.get("gap_end", 0),
                         detail=info.get("detail", ""))
        if kind == "reconnecting":  # chatty: core NATS only
            await self.hub.bus.publish(subjects.broker_events(self.user_id), ev)
        else:
            await self.hub.bus.js_publish(subjects.broker_events(self.user_id), ev)

    async def close(self) -> None:
        await self.ticker.close()
        self.task.cancel()
        with contextlib.suppress(BaseException):
            await self.task


class TickerHub:
    def __init__(self, bus: Bus, ws_root: str) -> None:
        self.bus = bus
        self.ws_root = ws_root
        self.feeds: dict[str, UserFeed] = {}
        self.wanted: dict[str, dict[int, str]] = {}  # user -> token -> mode
        self._last: dict[int, tuple] = {}
        self.published = 0
        self.events: dict[str, int] = {}

    async def publish_ticks(self, ticks: list[Tick]) -> None:
        """Publish each tick once, even when several users' connections deliver it."""
        for t in ticks:
            key = (MODE_RANK[t.mode], t.last_price, t.volume_traded, t.exchange_timestamp, t.oi)
            last = self._last.get(t.instrument_token)
            if last is not None and last[1:] == key[1:] and last[0] >= key[0]:
                continue
            self._last[t.instrument_token] = key
            await self.bus.publish(subjects.ticks(t.instrument_token), t)
            self.published += 1

    async def session_changed(self, user_id: str, live: LiveSession | None) -> None:
        old = self.feeds.pop(user_id, None)
        if old is not None:
            await old.close()
        if live is not None:
            feed = UserFeed(self, live)
            self.feeds[user_id] = feed
            for token, mode in self.wanted.get(user_id, {}).items():
                feed.ticker.modes[token] = mode

    async def subscribe(self, user_id: str, tokens: list[int], mode: str) -> bool:
        wanted = self.wanted.setdefault(user_id, {})
        for t in tokens:
            if MODE_RANK[mode] >= MODE_RANK.get(wanted.get(t, "ltp"), 0) or t not in wanted:
                wanted[t] = mode
        feed = self.feeds.get(user_id)
        if feed is None:
            return False
        await feed.ticker.subscribe(tokens, mode)
        return True

    async def unsubscribe(self, user_id: str, tokens: list[int] | None = None) -> None:
        wanted = self.wanted.setdefault(user_id, {})
        tokens = list(wanted) if tokens is None else tokens
        for t in tokens:
            wanted.pop(t, None)
        feed = self.feeds.get(user_id)
        if feed is not None:
            await feed.ticker.unsubscribe(tokens)

    async def close(self) -> None:
        for feed in list(self.feeds.values()):
            await feed.close()
        self.feeds.clear()

