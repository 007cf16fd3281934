"""The ticker's de-duplication is exact: a tick is dropped from ``kta.ticks.<token>`` only when another
connection already published it, field for field (or a richer mode of it); every user's own subject
gets all of that user's ticks. Frames go into the hub exactly as a Ticker hands them over
(``UserFeed.on_frame``), through a real nats-server; a sentinel tick published last on the same path
proves nothing else is still on its way."""

from __future__ import annotations

import struct

import pytest

from shared import messages as m
from shared import subjects
from shared.kite import codec
from shared.broker_sessions import LiveSession
from tests.helpers import eventually
from ticker_worker.hub import TickerHub, UserFeed

INFY, SENTINEL = 408065, 738561


def full(tbq: int = 1000, *, ltp: float = 1500.0, volume: int = 10_000, bid_qty: int = 75, token: int = INFY) -> m.Tick:
    depth = m.Depth([(bid_qty, ltp - 0.05, 3)] + [(10, ltp - 0.1 * i, 1) for i in range(2, 6)],
                    [(50, ltp + 0.05 * i, 2) for i in range(1, 6)])
    return m.Tick(token, "full", True, ltp, 5, 1499.5, volume, tbq, 2000, m.OHLC(1490.0, 1510.0, 1480.0, 1495.0),
                  0.0, 1_767_000_000, 0, 0, 0, 1_767_000_001, depth)


def frame(*ticks: m.Tick, mode: str | None = None) -> bytes:
    return codec.encode_frame([codec.encode_packet(m.Tick(**{**{f: getattr(t, f) for f in t.__struct_fields__},
                                                              **({"mode": mode} if mode else {})}))
                               for t in ticks])


def content(t: m.Tick) -> tuple:
    """Every field of the tick as the feed carries it (received_at is ours; change is derived)."""
    return tuple(getattr(t, f) for f in t.__struct_fields__ if f not in ("received_at", "change"))


class Tape:
    """Every tick the hub publishes, in arrival order, by subject — ONE subscription, so a sentinel
    that arrived proves everything published before it did."""

    def __init__(self) -> None:
        self.got: list[tuple[str, m.Tick]] = []

    async def __call__(self, tick: m.Tick, msg) -> None:
        self.got.append((msg.subject, tick))

    def ticks(self, owner: str = "") -> list[m.Tick]:
        """The shared subjects' ticks, or ``owner``'s own."""
        prefix = subjects.user_ticks(owner, 0).removesuffix("0") if owner else subjects.ALL_TICKS[:-1]
        return [t for s, t in self.got if s.startswith(prefix)]

    def of(self, token: int, owner: str = "") -> list[tuple]:
        return [content(t) for t in self.ticks(owner) if t.instrument_token == token]


@pytest.fixture
async def hub(bus):
    h = TickerHub(bus, "ws://127.0.0.1:9/unused")  # no connection is opened: frames are handed in
    yield h
    await h.close()


def feed_of(hub: TickerHub, user_id: str) -> UserFeed:
    feed = UserFeed(hub, LiveSession(m.BrokerSession(user_id=user_id, api_key="k", access_token_enc=""), "t"))
    hub.feeds[user_id] = feed
    return feed


async def tape(bus) -> Tape:
    t = Tape()
    await bus.subscribe("kta.>", m.Tick, t)
    await bus.sync()  # the ticker (another connection) publishes to a subscription the server has
    return t


async def settle(feed: UserFeed, source, tape: Tape) -> None:
    """Send a sentinel through ``feed`` and wait until it arrived (so everything before it did too)."""
    await feed.on_frame(source, frame(full(token=SENTINEL)), 1)
    await eventually(lambda: tape.of(SENTINEL), what="the sentinel")


async def test_ticks_differing_only_in_buy_quantity_or_depth_are_all_published(bus, hub):
    got = await tape(bus)
    feed, conn = feed_of(hub, "DEMO01"), object()
    sent = [full(1000), full(1001), full(1002), full(1002, bid_qty=76), full(1002, bid_qty=75)]
    await feed.on_frame(conn, frame(*sent[:3]), 1)  # three ticks differing only in total_buy_quantity
    await feed.on_frame(conn, frame(*sent[3:]), 2)  # then only in depth, back to an earlier book (A-B-A)
    await settle(feed, conn, got)
    assert got.of(INFY) == [content(t) for t in sent]
    assert got.of(INFY, "DEMO01") == [content(t) for t in sent]
    assert hub.copies == 0


async def test_another_connections_copy_is_dropped_its_own_repeat_is_not(bus, hub):
    got = await tape(bus)
    a, b = feed_of(hub, "DEMO01"), feed_of(hub, "DEMO02")
    ca, cb = object(), object()
    x, y = full(1000), full(1001)
    await a.on_frame(ca, frame(x, y), 1)
    await b.on_frame(cb, frame(x), 2)  # B's copies of A's ticks, one frame behind
    await b.on_frame(cb, frame(y), 3)
    await a.on_frame(ca, frame(x), 4)  # A's own tick back at an earlier state: a new tick, published
    await settle(a, ca, got)
    assert got.of(INFY) == [content(x), content(y), content(x)]
    assert hub.copies == 2
    assert got.of(INFY, "DEMO01") == [content(x), content(y), content(x)]  # each user gets all of theirs
    assert got.of(INFY, "DEMO02") == [content(x), content(y)]
    assert [t.received_at for t in got.ticks("DEMO02")] == [1, 1]  # the copy re-uses the published encoding


async def test_a_poorer_mode_of_a_published_tick_is_a_copy_a_richer_one_is_not(bus, hub):
    got = await tape(bus)
    a, b = feed_of(hub, "DEMO01"), feed_of(hub, "DEMO02")
    ca, cb = object(), object()
    x, y = full(1000), full(1001)
    await a.on_frame(ca, frame(x), 1)  # A subscribed full
    await b.on_frame(cb, frame(x, mode="quote"), 2)  # B quote: the same tick, poorer: a copy
    await b.on_frame(cb, frame(y, mode="quote"), 3)  # B first this time: published
    await a.on_frame(ca, frame(y), 4)  # A's full version carries more (depth): published too
    await b.on_frame(cb, frame(full(1000, ltp=1500.05), mode="ltp"), 5)  # a new price: published
    await settle(a, ca, got)
    modes = [t.mode for t in got.ticks() if t.instrument_token == INFY]
    assert modes == ["full", "quote", "full", "ltp"] and hub.copies == 1
    assert [t.mode for t in got.ticks("DEMO02")] == ["quote", "quote", "ltp"]  # B gets its own mode


async def test_a_malformed_frame_publishes_nothing(bus, hub):
    got = await tape(bus)
    feed, conn = feed_of(hub, "DEMO01"), object()
    good = codec.encode_packet(full(1000))
    bad = struct.pack(">HH", 2, len(good)) + good + struct.pack(">H", 30) + bytes(30)  # 30: no such packet
    with pytest.raises(codec.CodecError):
        await feed.on_frame(conn, bad, 1)
    await settle(feed, conn, got)
    assert got.of(INFY) == [] and got.of(INFY, "DEMO01") == []
