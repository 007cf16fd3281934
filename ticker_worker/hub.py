"""One broker WebSocket per connected user (more when the user's tokens exceed Kite's per-connection
limit); ticks published once per token, order updates and connection events to JetStream.

The tick path works on the frame's raw packets (``codec.split_frame``): several users' connections
deliver the same instrument's ticks, and a packet that another connection already published, byte
for byte (or that a richer packet already published begins with: ltp ⊂ quote ⊂ full), is a copy —
not decoded again, not published on ``kta.ticks.<token>`` again. So a tick is dropped only when it is
identical, field for field, to one already published; a connection's own ticks are never dropped.
Each tick is decoded and encoded once, and a frame's messages (the shared subject and the user's own
``kta.u.<user>.ticks.<token>``) leave in one write (``Bus.publish_many``)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter, deque
from typing import Any

from shared import subjects
from shared.bus import Bus
from shared.broker_sessions import LiveSession, expire_session
from shared.cancelling import cancel_all
from shared.exchange_clock import ExchangeClock
from shared.kite.codec import decode_frame, decode_packet, encode_frame, split_frame
from shared.kite.ticker import MODE_RANK, Ticker, TokenExpired
from shared.messages import BrokerEvent, BrokerOrderUpdate, encode
from ticker_worker.freshness import Freshness, MarketHours
from ticker_worker.wanted import WantedStore

log = logging.getLogger("kta.ticker_worker")

# Kite: 3,000 instruments per WebSocket connection, 3 connections per api_key.
MAX_TOKENS_PER_CONNECTION = 3000
MAX_CONNECTIONS = 3
RECENT = 4  # published packets remembered per token to recognise another connection's late copy


class TokenLimitExceeded(Exception):
    pass


class UserFeed:
    """A user's ticker connections; each token lives on exactly one of them."""

    def __init__(self, hub: "TickerHub", live: LiveSession) -> None:
        self.hub = hub
        self.live = live
        self.user_id = live.user_id
        self.tickers: list[Ticker] = []
        self.tasks = []
        self.home: dict[int, Ticker] = {}  # token -> the connection it is subscribed on
        self.load: Counter[Ticker] = Counter()  # tokens placed on each connection
        self.tick_subjects: dict[bytes, bytes] = {}  # packet's token bytes -> kta.u.<user>.ticks.<token>
        self._expired = False

    @property
    def connected(self) -> bool:
        return any(t._ws is not None for t in self.tickers)

    def _new_ticker(self) -> Ticker:
        ticker = Ticker(self.live.session.api_key, self.live.access_token, self.hub.ws_root,
                        on_order=self.on_order, on_event=self.on_event, on_frame=self.on_frame)
        self.tickers.append(ticker)
        self.tasks.append(self.hub.bus.spawn(self._run(ticker), name=f"ticker:{self.user_id}:{len(self.tickers)}"))
        return ticker

    def _place(self, token: int) -> Ticker:
        ticker = self.home.get(token)
        if ticker is not None:
            return ticker
        for ticker in self.tickers:
            if self.load[ticker] < self.hub.max_tokens:
                break
        else:
            if len(self.tickers) >= self.hub.max_connections:
                raise TokenLimitExceeded(f"{self.hub.max_connections} connections x {self.hub.max_tokens} "
                                         "instruments is Kite's limit per api_key")
            ticker = self._new_ticker()
        self.home[token] = ticker
        self.load[ticker] += 1
        return ticker

    def check_room(self, tokens: list[int]) -> None:
        free = sum(max(0, self.hub.max_tokens - self.load[t]) for t in self.tickers) + \
            (self.hub.max_connections - len(self.tickers)) * self.hub.max_tokens
        if len([t for t in set(tokens) if t not in self.home]) > free:
            raise TokenLimitExceeded(f"cannot subscribe {len(tokens)} more instruments: over Kite's limit")

    async def subscribe(self, tokens: list[int], mode: str) -> None:
        """Spread over connections; a token over the account's whole limit raises (nothing half-done)."""
        self.check_room(tokens)
        groups: dict[int, tuple[Ticker, list[int]]] = {}
        for token in tokens:
            ticker = self._place(token)
            groups.setdefault(id(ticker), (ticker, []))[1].append(token)
        for ticker, toks in groups.values():
            await ticker.subscribe(toks, mode)

    async def unsubscribe(self, tokens: list[int]) -> None:
        groups: dict[int, tuple[Ticker, list[int]]] = {}
        for token in tokens:
            ticker = self.home.pop(token, None)
            if ticker is not None:
                self.load[ticker] -= 1
                groups.setdefault(id(ticker), (ticker, []))[1].append(token)
        for ticker, toks in groups.values():
            await ticker.unsubscribe(toks)

    async def _run(self, ticker: Ticker) -> None:
        try:
            await ticker.run()
        except TokenExpired as e:
            if not self._expired:  # several connections see the same dead token
                self._expired = True
                await expire_session(self.hub.bus, self.user_id, str(e), session=self.live.session)

    async def on_frame(self, ticker: Ticker, frame: bytes, received_at: int) -> None:
        """This user's connection delivered a frame: its ticks are fresh, go to the user's own subjects
        (for their read-only key) and, unless another connection published them already, to the shared
        ones. Raises CodecError (before publishing anything) for a malformed frame."""
        packets = split_frame(frame)
        self.hub.freshness.user_tick[self.user_id] = time.time()
        await self.hub.publish_packets(self, ticker, packets, received_at, frame)

    def user_subject(self, key: bytes, token: int) -> bytes:
        subject = self.tick_subjects[key] = subjects.user_ticks(self.user_id, token).encode()
        return subject

    async def on_order(self, order: dict) -> None:
        with contextlib.suppress(ValueError):  # the exchange's time too (a quote-mode feed's ticks carry none)
            self.hub.exchange.heard_stamp(order.get("exchange_update_timestamp") or order.get("exchange_timestamp"))
        # Every connection of the user receives the same update: the msg id makes JetStream keep one.
        key = ":".join(str(order.get(k, "")) for k in ("order_id", "status", "filled_quantity",
                                                       "exchange_update_timestamp", "quantity", "price"))
        ack = await self.hub.bus.js_publish(subjects.order_updates(self.user_id), BrokerOrderUpdate(
            user_id=self.user_id, received_at=time.time_ns(), order=order), msg_id=key)
        if getattr(ack, "duplicate", False):
            self.hub.duplicate_updates += 1

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
        for ticker in self.tickers:
            await ticker.close()
        await cancel_all(self.tasks)


class _Token:
    """One instrument's publishing state: its shared subject and the last packets published."""

    __slots__ = ("token", "subject", "recent", "only")

    def __init__(self, key: bytes) -> None:
        self.token = int.from_bytes(key, "big")
        self.subject = subjects.ticks(self.token).encode()
        self.recent: deque[tuple[Any, bytes, bytes]] = deque(maxlen=RECENT)  # (connection, packet, encoded)
        self.only: Any = None  # the connection every remembered packet came from (one user's token: no look)

    def copy_of(self, source: Any, pkt: bytes) -> bytes | None:
        """None, or — when another connection published this packet (or a richer one beginning with
        it) — that publication's encoding (b"" if it was in a richer mode)."""
        for src, raw, encoded in self.recent:
            if src is not source and raw.startswith(pkt):
                return encoded if len(raw) == len(pkt) else b""
        return None

    def remember(self, source: Any, pkt: bytes, data: bytes) -> None:
        self.recent.append((source, pkt, data))
        if self.only is not source:
            self.only = source if all(src is source for src, _, _ in self.recent) else None


class TickerHub:
    def __init__(self, bus: Bus, ws_root: str, *, max_tokens: int = MAX_TOKENS_PER_CONNECTION,
                 max_connections: int = MAX_CONNECTIONS, store: WantedStore | None = None,
                 stale_after: float = 30.0, hours: str = "always", user_ticks: bool = True) -> None:
        self.bus = bus
        self.user_ticks = user_ticks
        self.store = store
        self.exchange = ExchangeClock()  # the exchange's time as the ticks tell it (the feed alerts carry it)
        self.freshness = Freshness(bus, stale_after, MarketHours(hours), self.live_users, exchange=self.exchange)
        self.ws_root = ws_root
        self.max_tokens = max_tokens
        self.max_connections = max_connections
        self.feeds: dict[str, UserFeed] = {}
        self.wanted: dict[str, dict[int, str]] = {}  # user -> token -> mode
        # user -> the instruments the trader started live on (the feed also carries what strategies
        # subscribe on their own, e.g. an option chain): what "live on N symbols" means to the desk
        self.picked: dict[str, list[int]] = {}
        self._tokens: dict[bytes, _Token] = {}  # by the packet's first four bytes (the token)
        self.published = 0
        self.copies = 0  # ticks dropped as another connection's copy
        self.duplicate_updates = 0  # order updates JetStream already had (several connections)
        self.events: dict[str, int] = {}

    async def publish_packets(self, feed: UserFeed, source: Any, packets: list[bytes], received_at: int,
                              frame: bytes = b"") -> None:
        """Publish one frame's packets from ``source`` (a connection of ``feed``'s user): each on the
        user's subject, and on the shared one unless it is another connection's copy. The new ones
        are decoded in one ``decode_frame`` pass (``frame`` itself when all are new): far cheaper per
        packet than a ``decode_packet`` call each."""
        now = time.time()
        fresh = self.freshness.token_tick
        tokens = self._tokens
        own = feed.tick_subjects if self.user_ticks else None
        out: list[tuple[bytes, bytes]] = []
        states, copies = [], []
        for pkt in packets:  # a connection's own earlier packets are never copies: judged before any is remembered
            key = pkt[:4]
            state = tokens.get(key)
            if state is None:
                state = tokens[key] = _Token(key)
            fresh[state.token] = now
            states.append(state)
            copies.append(None if state.only is source else state.copy_of(source, pkt))
        fresh_ones = [pkt for pkt, copy in zip(packets, copies) if copy is None]
        # the new packets decoded in one pass: the frame itself, or a frame of just them
        ticks = iter(decode_frame(frame if frame and len(fresh_ones) == len(packets) else encode_frame(fresh_ones),
                                  received_at) if fresh_ones else ())
        tick = None
        for i, pkt in enumerate(packets):
            state, copy, key = states[i], copies[i], pkt[:4]
            if copy is None:
                tick = next(ticks)
                data = encode(tick)
                state.remember(source, pkt, data)
                out.append((state.subject, data))
                self.published += 1
            else:
                self.copies += 1
                data = copy
            if own is not None:
                out.append((own.get(key) or feed.user_subject(key, state.token),
                            data or encode(decode_packet(pkt, received_at))))
        if tick is not None:  # once a frame: the exchange's time of its last new tick
            self.exchange.heard(tick.exchange_timestamp or tick.last_trade_time)
        await self.bus.publish_many(out)

    def live_users(self) -> dict[str, list[int]]:
        """Users whose broker feed is open, with the instruments they want."""
        return {u: list(self.wanted.get(u, {})) for u in self.feeds}

    async def session_changed(self, user_id: str, live: LiveSession | None) -> None:
        old = self.feeds.pop(user_id, None)
        if old is not None:
            await old.close()
        if live is not None:
            feed = UserFeed(self, live)
            self.feeds[user_id] = feed
            self.freshness.expect(user_id)
            by_mode: dict[str, list[int]] = {}
            for token, mode in self.wanted.get(user_id, {}).items():
                by_mode.setdefault(mode, []).append(token)
            for mode, tokens in by_mode.items():
                await feed.subscribe(tokens, mode)
            if not feed.tickers:
                feed._new_ticker()  # connected (and receiving order updates) even before any subscription

    async def subscribe(self, user_id: str, tokens: list[int], mode: str) -> bool:
        """Raises TokenLimitExceeded when the user's connections cannot hold the tokens."""
        wanted = self.wanted.setdefault(user_id, {})
        by_mode: dict[str, list[int]] = {}
        for t in tokens:  # a token keeps the richest mode anyone asked for
            by_mode.setdefault(max(mode, wanted.get(t, mode), key=MODE_RANK.__getitem__), []).append(t)
        feed = self.feeds.get(user_id)
        if feed is not None:
            feed.check_room(tokens)
            if not wanted:  # the first instruments: silence counts from now
                self.freshness.expect(user_id)
            for m, toks in by_mode.items():
                await feed.subscribe(toks, m)
        for m, toks in by_mode.items():
            for t in toks:
                wanted[t] = m
        await self._save(user_id)
        return feed is not None

    async def restore(self) -> None:
        """Take back what every user wanted before a restart (their feeds open as sessions appear)."""
        if self.store is not None:
            for user_id, saved in (await self.store.load()).items():
                self.wanted[user_id] = {**saved.wanted, **self.wanted.get(user_id, {})}
                self.picked.setdefault(user_id, saved.picked)
            if self.wanted:
                log.info("restored the subscriptions of %d users", len(self.wanted))

    async def _save(self, user_id: str) -> None:
        if self.store is not None:
            await self.store.save(user_id, self.wanted.get(user_id, {}), self.picked.get(user_id, []))

    async def pick(self, user_id: str, tokens: list[int]) -> None:
        """The trader started live on ``tokens`` (already subscribed): kept across a restart."""
        self.picked[user_id] = list(tokens)
        await self._save(user_id)

    async def unsubscribe(self, user_id: str, tokens: list[int] | None = None) -> None:
        wanted = self.wanted.setdefault(user_id, {})
        if tokens is None:  # the user stopped: nothing wanted, nothing picked
            tokens = list(wanted)
            self.picked.pop(user_id, None)
        for t in tokens:
            wanted.pop(t, None)
        await self._save(user_id)
        feed = self.feeds.get(user_id)
        if feed is not None:
            await feed.unsubscribe(tokens)

    async def close(self) -> None:
        for feed in list(self.feeds.values()):
            await feed.close()
        self.feeds.clear()
