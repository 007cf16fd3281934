"""A flush's ticks: one batch per set of instruments shown, shared by the feeds showing it; a client
that has not drained the last flush keeps its other instruments' rows and gets each one's latest."""

from __future__ import annotations

from gateway.stream_events import Client, Event
from gateway.streams import Streams, UserFeed
from gateway.tick_fanout import TickFanout
from shared import messages as m


def tick(token: int, price: float) -> m.Tick:
    return m.Tick(token, "full", True, price)


def feed(fanout: TickFanout, user: str, tokens: set[int]) -> tuple[UserFeed, Client]:
    f = UserFeed(None, user, fanout)  # no bus needed: the fan-out's subscriptions are not under test here
    f.tokens, f.tokens_key = tokens, frozenset(tokens)
    for token in tokens:
        fanout.readers.setdefault(token, set()).add(f)
    fanout.feeds.add(f)
    return f, f.attach(None, "s")


async def test_feeds_showing_the_same_instruments_share_one_batch_and_each_sees_only_its_own():
    fanout = TickFanout(bus=None)
    _, ca = feed(fanout, "AA01", {1, 2})
    _, cb = feed(fanout, "BB01", {1, 2})
    _, cc = feed(fanout, "CC01", {2})
    for t in (tick(1, 10.0), tick(2, 20.0), tick(3, 30.0)):
        await fanout._on_tick(t, None)
    assert fanout.flush() == 3
    (ea,), (eb,), (ec,) = ca.drain(), cb.drain(), cc.drain()
    assert [r.payload["instrument_token"] for r in ea.rows] == [1, 2]
    assert ea.rows is eb.rows and ea.cache is eb.cache  # rendered and joined once for both
    assert [r.payload["instrument_token"] for r in ec.rows] == [2] and ec.rows[0] is ea.rows[1]  # one row per token

    streams = Streams(bus=None)
    renders = []
    def render(name, payload, user):
        renders.append(payload["instrument_token"])
        return f"<tr data-token=\"{payload['instrument_token']}\" data-ltp=\"{payload['last_price']}\">"
    (one,) = streams.messages([ea], render, "A", True)
    (two,) = streams.messages([eb], render, "B", True)
    assert one[2] is two[2] and sorted(renders) == [1, 2]  # the same text object: framed once as well
    assert [t for _, _, t in streams.messages([ec], render, "C", False)] == ['<tr data-token="2" data-ltp="20.0">']
    assert sorted(renders) == [1, 2]


def test_a_client_behind_by_a_flush_keeps_its_other_rows_and_the_latest_of_each():
    client = Client()
    row = lambda token, price: Event(0, "ticks", ("ticks", token), {"instrument_token": token, "last_price": price})  # noqa: E731
    client.push(Event(1, "ticks", "ticks", {}, {}, (row(1, 10.0), row(2, 20.0))))
    client.push(Event(2, "ticks", "ticks", {}, {"shared": "cache"}, (row(2, 21.0),)))
    (ev,) = client.drain()
    assert ev.id == 2 and [(r.payload["instrument_token"], r.payload["last_price"]) for r in ev.rows] == [(1, 10.0), (2, 21.0)]
    assert ev.cache == {}  # its own text: the shared batch's is not this client's
