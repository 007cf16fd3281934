"""The per-client buffer of the SSE layer: coalesced by key, bounded, replayed from the ring."""

from __future__ import annotations

import random

from gateway.stream_events import CLIENT_BUFFER, Client, Event
from gateway.streams import RING, UserFeed, _key


def test_a_slow_client_gets_the_latest_per_key_from_a_bounded_buffer():
    rng = random.Random(7)
    client = Client()
    for i in range(10_000):
        token = rng.choice((256265, 408065, 738561))
        client.push(Event(i, "ticks", _key("ticks", {"instrument_token": token}), {"instrument_token": token, "i": i}))
    for i in range(10_000, 10_050):
        client.push(Event(i, "positions", "positions", {"i": i}))
    events = client.drain()
    assert len(events) == 4  # three tokens and one positions snapshot
    assert [e.payload["i"] for e in events if e.name == "positions"] == [10_049]
    latest = {}
    for e in events:
        if e.name == "ticks":
            latest[e.payload["instrument_token"]] = e.payload["i"]
    assert all(i > 9_000 for i in latest.values())
    for i in range(CLIENT_BUFFER * 3):  # distinct keys: still bounded, the oldest dropped
        client.push(Event(i, "signals", ("signals", str(i)), {}))
    assert len(client.buffer) == CLIENT_BUFFER and client.dropped == CLIENT_BUFFER * 2


def test_attach_replays_only_events_after_last_event_id():
    feed = UserFeed(bus=None, user_id="DEMO01")
    ids = [feed.emit("orders", {"order_id": str(i), "ts": i}).id for i in range(RING + 10)]
    assert ids == sorted(ids) and len(feed.ring) == RING
    client = feed.attach(ids[-3])
    assert [e.id for e in client.drain()] == ids[-2:]
    assert feed.attach(None).drain() == []


def test_an_event_is_framed_as_litestar_frames_it_once_per_text():
    from litestar.response import ServerSentEventMessage

    from gateway.api.stream import _framed, _Message

    for data in ('<tr id="tick-1"><td>1</td></tr><tr id="tick-2"></tr>', '{"a": "x"}', "two\nlines\r\nand\rmore", ""):
        assert _Message(data=data, event="ticks", id="42").encode() == ServerSentEventMessage(
            data=data, event="ticks", id="42").encode()
    hits = _framed.cache_info().hits
    text = "".join(["<tr>", "row", "</tr>"])  # a new str object with the same text, as each client joins its own
    _Message(data=text, event="ticks", id="1").encode()
    _Message(data="".join(["<tr>", "row", "</tr>"]), event="ticks", id="2").encode()
    assert _framed.cache_info().hits == hits + 1
