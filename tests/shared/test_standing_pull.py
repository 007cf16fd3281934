"""A pull consumer's standing request (shared/pull.py): no pull request per message, and a partition handed
over lets go at once without a stale request swallowing the next owner's messages (issue #18)."""

import asyncio

from shared import messages as m
from shared import subjects as s
from tests.helpers import connect, eventually
from tests.shared.test_bus_jetstream import a_signal


async def _unacked(bus, durable: str, n: int) -> bool:
    """Exactly ``n`` of the consumer's messages delivered and not acked, none waiting undelivered."""
    info = await bus.js.consumer_info("KTA_SIGNALS", durable)
    return info.num_pending == 0 and info.num_ack_pending == n


async def test_lone_messages_cost_their_delivery_and_ack_alone_no_pull_request_each(nats_server):
    """The execution worker sent ~8 pull requests per order (one per message delivered, more for idle
    partitions every second): one request now stands for a batch, whatever the gaps between messages."""
    pub, sub = await connect(nats_server, "standing-pub"), await connect(nats_server, "standing-sub")
    try:
        await pub.ensure_streams()
        handled: list[str] = []
        arrived = asyncio.Queue()

        async def handler(obj, msg):
            handled.append(obj.id)
            await arrived.put(obj.id)

        for key in (None, s.user_of):  # a plain consumer and a keyed one (the partition feeds)
            user = "KS01" if key is None else "KS02"
            durable = f"standing-{user}"
            await sub.consume("KTA_SIGNALS", durable, f"kta.u.{user}.signals.*", m.AnySignal, handler, batch=16,
                              key=key, idle_wait=120.0)
            await pub.js_publish(s.signals(user), a_signal(user, f"{user}-0"))
            assert await asyncio.wait_for(arrived.get(), 20) == f"{user}-0"
            await eventually(lambda: _unacked(pub, durable, 0), what="the first message acked")  # noqa: B023
            sent = sub.nc.stats["out_msgs"]
            for n in range(1, 6):  # each alone, the consumer idle in between
                await pub.js_publish(s.signals(user), a_signal(user, f"{user}-{n}"))
                assert await asyncio.wait_for(arrived.get(), 20) == f"{user}-{n}"
                await eventually(lambda: _unacked(pub, durable, 0), what="acked")  # noqa: B023
            assert sub.nc.stats["out_msgs"] - sent == 5  # the five acks: no pull request (nats-py's fetch: 10)
    finally:
        await sub.close()
        await pub.close()


async def test_a_consumer_handed_over_lets_go_at_once_and_hands_back_what_it_had_not_started(nats_server):
    """A partition's feed told to stop does not wait out its standing request (120 s here), hands the
    messages delivered to it but not started back at once (not after the ack wait), and its request is
    dropped: the next owner gets every later message at once, none swallowed by the old request."""
    pub, old, new = [await connect(nats_server, name) for name in ("hand-pub", "hand-old", "hand-new")]
    try:
        await pub.ensure_streams()
        durable, subject = "handover-p", "kta.u.KH01.signals.*"
        release, started, stop = asyncio.Event(), asyncio.Event(), asyncio.Event()
        old_got: list[str] = []

        async def slow(obj, msg):
            old_got.append(obj.id)
            started.set()
            await release.wait()

        task = await old.consume("KTA_SIGNALS", durable, subject, m.AnySignal, slow, batch=16, ack_wait=120.0,
                                 stop=stop, idle_wait=120.0)
        for n in range(3):
            await pub.js_publish(s.signals("KH01"), a_signal("KH01", f"h{n}"))
        await asyncio.wait_for(started.wait(), 20)
        # h1 and h2 delivered to the old owner too, waiting behind h0
        await eventually(lambda: _unacked(pub, durable, 3), what="three delivered")
        stop.set()
        release.set()
        await asyncio.wait_for(task, 20)  # h0 finished, the rest handed back; not the request's 120 s
        assert old_got == ["h0"]

        got: list[str] = []

        async def handler(obj, msg):
            got.append(obj.id)

        await new.consume("KTA_SIGNALS", durable, subject, m.AnySignal, handler, batch=16, ack_wait=120.0,
                          idle_wait=120.0)
        await pub.js_publish(s.signals("KH01"), a_signal("KH01", "h3"))
        # the ack wait (120 s) is what a swallowed or unreturned message would cost
        # (in any order: with the old request still waiting on the server, nats-server can put the first message
        # handed back behind the second — shared/pull.py)
        await eventually(lambda: sorted(got) == ["h1", "h2", "h3"], timeout=30, what="h1, h2 handed back, h3 delivered")
        assert len(got) == 3  # once each
    finally:
        for bus in (new, old, pub):
            await bus.close()
