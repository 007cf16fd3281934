"""Live events for one user's dashboard (SSE) and API clients, from that user's NATS subjects only.

* One ``UserFeed`` per user subscribes to ``kta.u.<user>.{orders,positions,risk,status,signals,
  broker.events,alerts}`` (and ``broker.order_updates`` only for Kite's order times, which kta's order
  events lack); nothing else, so a user never sees another's data.
* Ticks come from the gateway's ``TickFanout`` (``gateway/tick_fanout.py``): ONE subscription to
  ``kta.ticks.<token>`` per token for all users, coalesced per token, flushed a few times a second to
  the feeds of the users live on it. Per tick the work is O(1).
* Every event gets a per-user, monotonically increasing id; all but ticks (the latest state, a few a
  second) go into a small ring buffer, so a reconnecting browser resumes from ``Last-Event-ID``.
* Each connected client has a bounded buffer keyed by what the event is about (ticks per token, the
  latest positions, an order by id): a slow client gets the latest state, never an unbounded queue.
* An event is rendered once per format (the dashboard's HTML, the API's JSON) whatever the number of
  clients — a tick update once for every user showing it; the dashboard gets a flush's tick rows as
  one message.
* A stream lives only as long as its login session: every ``SESSION_CHECK_SECONDS`` the sessions of
  all open streams are checked in one query, and a stream whose session was revoked (logout,
  ``kta users remove``) or has expired is closed. Streams are capped per session and per user.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec

from gateway.stream_events import Client, Event
from gateway.tick_fanout import TickFanout
from shared import messages as m
from shared import subjects
from shared.bus import Bus

log = logging.getLogger("kta.gateway.streams")
EVENTS = ("ticks", "signals", "orders", "positions", "risk", "status", "backtest", "alerts")
RING = 256
ORDER_TIMES = 1000  # broker order ids remembered with the exchange's order time, per user
SESSION_CHECK_SECONDS = 2.0
TICKS_ASK_SECONDS = 2.0  # a feed opened while the ticker did not answer asks for the user's live symbols again
UNSTARTED_SECONDS = 30.0  # a stream reserved for a response that never started is let go after this
Render = Callable[[str, dict, str], str]


class StreamLimit(Exception):
    """Too many open streams for the session or the user."""


def _key(name: str, payload: dict) -> Any:
    if name == "ticks":
        return ("ticks", payload.get("instrument_token"))
    if name == "orders":
        return ("orders", payload.get("tag") or payload.get("order_id"), payload.get("ts"))
    if name == "signals":
        return ("signals", payload.get("id"))
    if name == "status":
        return ("status", payload.get("kind") or payload.get("service"), payload.get("ts"))
    if name == "backtest":  # a run's latest progress replaces the earlier
        return ("backtest", payload.get("backtest_id"))
    if name == "alerts":
        return ("alerts", payload.get("key") or payload.get("ts"))
    return name  # positions, risk: the latest replaces the rest


class UserFeed:
    def __init__(self, bus: Bus, user_id: str, fanout: TickFanout | None = None) -> None:
        self.bus = bus
        self.fanout = fanout
        self.user_id = subjects.user(user_id)
        self.ring: deque[Event] = deque(maxlen=RING)
        self.clients: set[Client] = set()
        self.tokens: set[int] = set()  # the instruments whose ticks this feed shows (kept by the fanout)
        self._ids = itertools.count(time.time_ns() // 1_000_000)  # survives a gateway restart in order
        self._subs: list[Any] = []
        self._order_times: OrderedDict[str, str] = OrderedDict()  # order id -> Kite's order_timestamp

    async def start(self) -> "UserFeed":
        u = self.user_id
        for subject, kind, name in ((subjects.orders(u), m.OrderEvent, "orders"),
                                    (subjects.positions(u), m.PositionSnapshot, "positions"),
                                    (subjects.risk(u), m.RiskState, "risk"),
                                    (subjects.status(u), m.WorkerStatus, "status"),
                                    (subjects.signals(u), m.AnySignal, "signals"),
                                    (subjects.broker_events(u), m.BrokerEvent, "status"),
                                    (subjects.backtests(u), m.BacktestProgress, "backtest"),
                                    (subjects.alerts(u), m.Alert, "alerts")):
            self._subs.append(await self.bus.subscribe(subject, kind, self._handler(name)))
        self._subs.append(await self.bus.subscribe(subjects.order_updates(u), m.BrokerOrderUpdate,
                                                   self._on_broker_order))
        await self.bus.sync()  # the server has the subscriptions before anyone is told "connected"
        return self

    def _handler(self, name: str):
        async def handle(obj: msgspec.Struct, msg) -> None:
            payload = msgspec.to_builtins(obj)
            if name == "status" and isinstance(obj, m.BrokerEvent):
                payload["source"] = "broker"
            if name == "orders" and not payload.get("order_timestamp"):
                stamp = self._order_times.get(payload.get("order_id") or "")
                if stamp:  # the exchange's clock, like the ticks and signals beside it
                    payload["order_timestamp"] = stamp
            self.emit(name, payload)
        return handle

    def emit(self, name: str, payload: dict) -> Event:
        ev = Event(next(self._ids), name, _key(name, payload), payload)
        self.ring.append(ev)
        for c in self.clients:
            c.push(ev)
        return ev

    def emit_ticks(self, rows: tuple[Event, ...], cache: dict) -> None:
        """A flush's tick rows for this feed's instruments (rows and the batch's render cache shared
        with every feed showing the same instruments); not kept in the ring: a reconnecting client
        gets the next flush, and orders stay resumable."""
        if self.clients:
            ev = Event(next(self._ids), "ticks", "ticks", {}, cache, rows)
            for c in self.clients:
                c.push(ev)

    async def _on_broker_order(self, update: m.BrokerOrderUpdate, msg) -> None:
        """Kite's own order updates carry the exchange-side order time kta's order events lack."""
        order_id, stamp = str(update.order.get("order_id") or ""), update.order.get("order_timestamp")
        if order_id and stamp and order_id not in self._order_times:
            self._order_times[order_id] = str(stamp)
            if len(self._order_times) > ORDER_TIMES:
                self._order_times.popitem(last=False)

    async def set_ticks(self, tokens: list[int]) -> None:
        if self.fanout is not None:
            await self.fanout.want(self, tokens)

    # ---- clients ----------------------------------------------------------------------------

    def attach(self, last_event_id: int | None, session: str = "") -> Client:
        client = Client(session=session)
        if last_event_id is not None:
            for ev in self.ring:
                if ev.id > last_event_id:
                    client.push(ev)
        self.clients.add(client)
        return client

    async def close(self) -> None:
        for c in list(self.clients):
            c.close()
        self.clients.clear()
        await self.set_ticks([])
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self._subs.clear()


class Streams:
    """Every user's feed in this gateway, opened on the first stream and closed at logout."""

    def __init__(self, bus: Bus, heartbeat: float = 15.0,
                 live_tokens: Callable[[str], Awaitable[list[int] | None]] | None = None,
                 active_sessions: Callable[[set[str]], set[str]] | None = None,
                 per_session: int = 6, per_user: int = 20) -> None:
        self.bus = bus
        self.heartbeat = heartbeat
        self.live_tokens = live_tokens
        self.active_sessions = active_sessions
        self.per_session, self.per_user = per_session, per_user
        self.fanout = TickFanout(bus)
        self.renders = 0  # events rendered (once per format, whatever the number of clients)
        self.feeds: dict[str, UserFeed] = {}
        self._lock = asyncio.Lock()
        self._sweeper: asyncio.Task | None = None

    async def feed(self, user_id: str) -> UserFeed:
        async with self._lock:
            feed = self.feeds.get(user_id)
            if feed is None:
                feed = self.feeds[user_id] = await UserFeed(self.bus, user_id, self.fanout).start()
                if self.live_tokens is not None:
                    tokens = await self.live_tokens(user_id)
                    await feed.set_ticks(tokens or [])
                    if tokens is None:
                        self.bus.spawn(self._ask_ticks(user_id, feed), name=f"stream-ticks:{user_id}")
            return feed

    async def _ask_ticks(self, user_id: str, feed: UserFeed) -> None:
        """The ticker did not answer when the feed opened (down, restarting, or slow under load): ask again
        until it does. The feed stayed without ticks for good while the trader was live (a gateway restarted
        while its ticker was down)."""
        while self.feeds.get(user_id) is feed:
            await asyncio.sleep(TICKS_ASK_SECONDS)
            tokens = await self.live_tokens(user_id)
            if tokens is not None:
                if self.feeds.get(user_id) is feed:
                    await feed.set_ticks(tokens)
                return

    async def set_ticks(self, user_id: str, tokens: list[int]) -> None:
        feed = self.feeds.get(user_id)
        if feed is not None:
            await feed.set_ticks(tokens)

    def close_user(self, user_id: str) -> None:
        """Close every stream of the user now (logout); the subscriptions go in the background."""
        feed = self.feeds.pop(user_id, None)
        if feed is not None:
            for c in list(feed.clients):
                c.close()
            self.bus.spawn(feed.close(), name=f"close-feed:{user_id}")

    def stats(self) -> dict[str, int]:
        return {"streams": len(self.feeds), "clients": sum(len(f.clients) for f in self.feeds.values()),
                "ticks_seen": self.fanout.ticks_seen, "tick_subscriptions": self.fanout.subscriptions,
                "renders": self.renders}

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for user_id in list(self.feeds):
            await self.feeds.pop(user_id).close()
        await self.fanout.close()

    async def attach(self, user_id: str, last_event_id: int | None, session: str = "") -> tuple[UserFeed, Client]:
        """A new client of the user's feed, with the ring's events after ``last_event_id`` queued.
        Raises StreamLimit when the session or the user has as many streams open as allowed."""
        feed = await self.feed(user_id)
        if sum(c.session == session for c in feed.clients) >= self.per_session:
            raise StreamLimit(f"at most {self.per_session} event streams per session are open at once: "
                              f"close another tab or stream first")
        if len(feed.clients) >= self.per_user:
            raise StreamLimit(f"at most {self.per_user} event streams per user are open at once: "
                              f"close another tab or stream first")
        if self._sweeper is None and self.active_sessions is not None:
            self._sweeper = asyncio.create_task(self._sweep(), name="stream-sessions")
        return feed, feed.attach(last_event_id, session)

    async def _sweep(self) -> None:
        """Close the streams whose session ended, and let go of those whose response never started."""
        while True:
            await asyncio.sleep(SESSION_CHECK_SECONDS)
            try:
                clients = [(feed, c) for feed in self.feeds.values() for c in feed.clients]
                alive = self.active_sessions({c.session for _, c in clients}) if clients else set()
                now = time.monotonic()
                for feed, c in clients:
                    if c.session not in alive or (not c.started and now - c.opened_at > UNSTARTED_SECONDS):
                        c.close()
                        feed.clients.discard(c)
            except Exception:  # noqa: BLE001 - a failed check must not stop the next one
                log.exception("checking the sessions of the event streams failed")

    async def events(self, feed: UserFeed, client: Client) -> AsyncIterator[list[Event] | None]:
        """The client's events in batches as they come; ``None`` marks a heartbeat."""
        client.started = True
        try:
            while not client.closed:
                if not client.buffer:
                    client.wake.clear()
                    try:
                        await asyncio.wait_for(client.wake.wait(), self.heartbeat)
                    except asyncio.TimeoutError:
                        yield None
                        continue
                batch = client.drain()
                if batch:
                    yield batch
        finally:
            feed.clients.discard(client)

    def messages(self, events: list[Event], render: Render, user_id: str,
                 merge_ticks: bool) -> list[tuple[str, int, str]]:
        """``(event name, id, text)`` for each event, each rendered once per format for all clients
        (the text is kept on the event); with ``merge_ticks`` consecutive tick rows are one message."""
        out: list[tuple[str, int, list[str]]] = []
        for ev in events:
            if ev.rows:  # a flush's ticks: one message for the dashboard, one per row for API clients
                if merge_ticks:
                    text = ev.cache.get(render)
                    if text is None:  # joined once for every feed showing the same instruments
                        text = ev.cache[render] = "".join(self._rendered(row, render, user_id) for row in ev.rows)
                    out.append(("ticks", ev.id, [text]))
                else:
                    out.extend(("ticks", ev.id, [self._rendered(row, render, user_id)]) for row in ev.rows)
                continue
            text = self._rendered(ev, render, user_id)
            if text:
                out.append((ev.name, ev.id, [text]))
        return [(name, ev_id, "".join(parts)) for name, ev_id, parts in out if parts[0]]

    def _rendered(self, ev: Event, render: Render, user_id: str) -> str:
        """The event's text in ``render``'s format, rendered once for every client ("" if it fails)."""
        text = ev.cache.get(render)
        if text is None:
            try:
                text = render(ev.name, ev.payload, user_id)
            except Exception as e:  # noqa: BLE001 - one bad fragment must not end the stream
                log.warning("rendering %s failed: %r", ev.name, e)
                text = ""
            ev.cache[render] = text
            self.renders += 1
        return text


def parse_last_event_id(value: str | None) -> int | None:
    if value and value.strip().isdigit():
        return int(value.strip())
    return None
