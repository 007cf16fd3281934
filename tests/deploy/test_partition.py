"""Partition ownership over a real nats-server: the hash matches the server's transform, copies of a
worker split the partitions, a clean stop hands them over, a dead worker's lease ages out."""

from __future__ import annotations

import asyncio
import itertools

from shared import messages as m
from shared import partition
from shared import subjects as s
from shared.bus import Bus
from tests.helpers import connect, eventually


async def test_user_partition_matches_the_server_transform(bus):
    for i in range(40):
        user = f"U{i:03d}X"
        ack = await bus.js_publish(s.signals(user), m.Signal(id=f"px{i}", user_id=user, strategy_id="a",
                                   strategy="rsi", exchange="NSE", tradingsymbol="INFY", instrument_token=1,
                                   transaction_type="BUY", quantity=1), msg_id=f"px{i}")
        stored = await bus.js.get_msg(s.STREAM_SIGNALS, ack.seq)
        assert stored.subject == partition.feed_subject(s.signals(user), partition.of(user))
        assert partition.published(stored.subject) == s.signals(user)


async def test_copies_split_partitions_and_take_over_from_a_dead_one(nats_server):
    buses = [await connect(nats_server, f"part{i}") for i in range(3)]
    kw = dict(lease_seconds=1.5, bucket="kta_leases_test")
    parts = [partition.Partitions(bus, "ptest", instance=f"w{i}", **kw) for i, bus in enumerate(buses)]
    a, b, c = parts
    try:
        await a.start()
        assert a.owned == set(range(partition.PARTITIONS))  # alone: everything
        await b.start()
        await eventually(lambda: len(a.owned) == len(b.owned) == partition.PARTITIONS // 2, what="an even split")
        assert not a.owned & b.owned

        await c.start()
        await eventually(lambda: sorted(a.owned | b.owned | c.owned) == list(range(partition.PARTITIONS))
                         and max(len(a.owned), len(b.owned), len(c.owned)) <= 3, what="three-way split")
        for x, y in itertools.combinations((a, b, c), 2):
            assert not x.owned & y.owned

        await a.close()  # clean: its leases are deleted at once
        await eventually(lambda: len(b.owned) + len(c.owned) == partition.PARTITIONS, what="hand-over")

        dead = set(c.owned)
        c._loop.cancel()  # the process hangs: no renewals, no release
        await buses[2].nc.close()
        await eventually(lambda: b.owned == set(range(partition.PARTITIONS)), timeout=10, what="takeover")
        assert dead <= b.owned
    finally:
        for part in parts:  # closing twice, or after its connection died, is harmless
            await part.close()
        for bus in buses:
            await bus.close()


async def test_commands_are_answered_only_by_the_owner(nats_server):
    owner_bus, other_bus, client = [await connect(nats_server, n) for n in ("own", "other", "client")]
    owned = partition.of("DEMO01")

    async def answer(cmd, user_id, msg):
        return m.Ok(data={"by": "owner"})

    async def wrong(cmd, user_id, msg):
        return m.Ok(data={"by": "other"})

    await owner_bus.serve(s.cmd_wildcard("pserve"), answer, accept=lambda u: partition.of(u) == owned)
    await other_bus.serve(s.cmd_wildcard("pserve"), wrong, accept=lambda u: partition.of(u) != owned)
    await asyncio.gather(owner_bus.nc.flush(), other_bus.nc.flush())
    for _ in range(5):
        reply = await client.request(s.cmd("DEMO01", "pserve", "list"), m.ListStrategies())
        assert isinstance(reply, m.Ok) and reply.data == {"by": "owner"}
    for bus in (owner_bus, other_bus, client):
        await bus.close()
