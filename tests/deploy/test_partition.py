"""Partition ownership over a real nats-server: the hash matches the server's transform, copies of a
worker split the partitions, a clean stop hands them over, a dead worker's lease ages out."""

from __future__ import annotations

import asyncio
import itertools

import msgspec

from shared import messages as m
from shared import partition
from shared import subjects as s
from shared.bus import Bus
from shared.kv_keys import live_keys
from tests.helpers import LosesFirstCancel, connect, ends_within, eventually


async def _close(parts, buses) -> None:
    """The test's partitions, then its connections (closing twice, or after its connection died, is harmless)."""
    for part in parts:
        await part.close()
    for bus in buses:
        await bus.close()


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
        await _close(parts, buses)


async def test_a_joiner_claims_what_a_peer_releases_within_a_fraction_of_a_tick(nats_server):
    """A copy joins a worker that holds everything (after the start-up grace: a restart, a late start): it is
    under its share with nothing free until the holder's next tick releases the surplus, and claims it then (told
    of the release, and its watch sees the leases deleted) — not at its own next tick (lease/3: 10 s here)."""
    buses = [await connect(nats_server, f"joiner{i}") for i in range(2)]
    kw = dict(lease_seconds=30.0, bucket="kta_leases_joiner")
    a, b = (partition.Partitions(bus, "pjoin", instance=f"w{i}", **kw) for i, bus in enumerate(buses))
    try:
        await a.start()
        await b.start()
        assert len(a.owned) == partition.PARTITIONS and b.owned == set()
        await a.tick()  # the holder's tick: it sees the new member and releases its surplus
        assert len(a.owned) == partition.PARTITIONS // 2
        await eventually(lambda: len(b.owned) == partition.PARTITIONS // 2, timeout=5, what="the surplus claimed")
        assert not a.owned & b.owned
    finally:
        await _close([a, b], buses)


async def test_a_peer_told_of_a_clean_stop_claims_the_released_partitions_at_once(nats_server):
    """The stopping copy announces its release: the survivor claims at once, not at its next tick (lease/3: 100 s
    here, far beyond the wait), and answers the reads it heard while neither owned the partitions."""
    buses = [await connect(nats_server, f"told{i}") for i in range(3)]
    kw = dict(lease_seconds=300.0, bucket="kta_leases_told")
    a, b = (partition.Partitions(bus, "ptold", instance=f"w{i}", **kw) for i, bus in enumerate(buses[:2]))
    served: list[str] = []

    async def answer(cmd, user_id, msg):
        served.append(user_id)
        return m.Ok(data={"by": "b"})

    user = next(u for u in (f"T{i:03d}X" for i in range(100)) if partition.of(u) == 0)
    try:
        await a.start()
        await b.start()
        await a.tick()  # the holder sees the new member and gives half away
        await eventually(lambda: len(b.owned) == partition.PARTITIONS // 2, timeout=15, what="an even split")
        if 0 in b.owned:  # the test's user on the copy that stops
            a, b = b, a
        await b.bus.serve(s.cmd_wildcard("ptold"), answer, accept=b.owns, missed=b.missed)
        await b.bus.sync()
        asked = asyncio.create_task(buses[2].request(s.cmd(user, "ptold", "get_orders"), m.GetOrders(), timeout=30))
        await eventually(lambda: b.missed_reads._kept[0], timeout=15, what="the read heard by the survivor")
        await a.close()  # clean: leaves, deletes its leases, announces it
        await eventually(lambda: b.owned == set(range(partition.PARTITIONS)), timeout=15, what="the survivor claims")
        reply = await asked  # nobody answered it before: a owned the partition and had no handler
        assert isinstance(reply, m.Ok) and reply.data == {"by": "b"} and served == [user]
    finally:
        await _close([a, b], buses)


async def test_copies_started_together_claim_their_share_and_cover_an_absent_one_after_the_grace(nats_server):
    buses = [await connect(nats_server, f"expect{i}") for i in range(2)]
    kw = dict(lease_seconds=1.5, bucket="kta_leases_expect", expected=3)
    a, b = (partition.Partitions(bus, "pexpect", instance=f"w{i}", **kw) for i, bus in enumerate(buses))
    try:
        await asyncio.gather(a.start(), b.start())  # at the same moment: a partition lost to the other, the next tried
        assert len(a.owned) == len(b.owned) == 3 and not a.owned & b.owned  # ceil(8 / 3) each, none more
        await eventually(lambda: sorted(a.owned | b.owned) == list(range(partition.PARTITIONS)), timeout=10,
                         what="the third copy's share covered after the grace")
        assert not a.owned & b.owned
    finally:
        await _close([a, b], buses)


async def test_a_worker_restarted_under_its_name_takes_its_leases_back_at_once(nats_server, tmp_path):
    """SIGKILLed, a worker's leases live on until their TTL: its restart (same name: the holder of its
    local state's lock) owns its partitions as it starts; any other worker still waits them out."""
    buses = [await connect(nats_server, f"restart{i}") for i in range(3)]
    kw = dict(lease_seconds=30.0, bucket="kta_leases_restart")  # the leases outlive the test: no TTL can explain it
    held = partition.restartable_instance(tmp_path / "worker.lock")
    assert held is not None
    name, lock = held
    assert partition.restartable_instance(tmp_path / "worker.lock") is None  # held: no second live worker by that name
    first = partition.Partitions(buses[0], "prestart", instance=name, **kw)
    other = partition.Partitions(buses[2], "prestart", instance="other", **kw)
    try:
        await first.start()
        assert first.owned == set(range(partition.PARTITIONS))
        first._loop.cancel()  # killed: no renewal, no release
        await buses[0].nc.close()
        lock.close()  # the kernel drops a dead process's lock

        again = partition.restartable_instance(tmp_path / "worker.lock")
        assert again is not None and again[0] == name  # the same instance
        await other.start()
        assert other.owned == set()  # a stranger waits the leases out
        await other.close()  # (two members would split them: let the restarted one be alone)
        restarted = partition.Partitions(buses[1], "prestart", instance=again[0], **kw)
        await restarted.start()
        assert restarted.owned == set(range(partition.PARTITIONS))
        await restarted.close()
        again[1].close()
    finally:
        await _close([first, other], buses)


async def test_leases_lost_together_are_let_go_together_and_claimed_back(nats_server):
    """A worker stalled past its leases' TTL (a loaded machine) finds them all gone at its next tick: it
    lets them go at once — one after another, each waited out its feed's fetch, a second apiece with the
    partition's commands unanswered — and claims the free ones back in the same tick."""
    bus, admin = await connect(nats_server, "plost"), await connect(nats_server, "plost-admin")
    released: list[tuple[int, set[int]]] = []

    async def on_release(p: int) -> None:
        released.append((p, set(part.owned)))

    part = partition.Partitions(bus, "plost", instance="w", lease_seconds=30.0, bucket="kta_leases_lost",
                                on_release=on_release)
    try:
        await part.start()
        assert part.owned == set(range(partition.PARTITIONS))
        leases = await admin.kv("kta_leases_lost", ttl=30.0)
        for p in range(partition.PARTITIONS):
            await leases.delete(f"plost.p{p}")  # aged out while the worker stalled
        await part.tick()
        assert sorted(p for p, _ in released) == list(range(partition.PARTITIONS))
        assert [owned for _, owned in released] == [set()] * partition.PARTITIONS  # none kept while others went
        assert part.owned == set(range(partition.PARTITIONS))
    finally:
        await _close([part], [bus, admin])


async def test_commands_are_answered_only_by_the_owner(nats_server):
    owner_bus, other_bus, client = [await connect(nats_server, n) for n in ("own", "other", "client")]
    owned = partition.of("DEMO01")

    async def answer(cmd, user_id, msg):
        return m.Ok(data={"by": "owner"})

    async def wrong(cmd, user_id, msg):
        return m.Ok(data={"by": "other"})

    await owner_bus.serve(s.cmd_wildcard("pserve"), answer, accept=lambda u: partition.of(u) == owned)
    await other_bus.serve(s.cmd_wildcard("pserve"), wrong, accept=lambda u: partition.of(u) != owned)
    await asyncio.gather(owner_bus.sync(), other_bus.sync())
    for _ in range(5):
        reply = await client.request(s.cmd("DEMO01", "pserve", "list"), m.ListStrategies())
        assert isinstance(reply, m.Ok) and reply.data == {"by": "owner"}
    for bus in (owner_bus, other_bus, client):
        await bus.close()


async def test_a_partition_whose_feed_cannot_start_is_given_back_whole_and_taken_again(nats_server):
    """Claimed while its consumer had no leader (a NATS node just killed), a partition's feed failed to start: it
    stayed owned with no feed, its users' signals never handled (a cluster test on a loaded machine). Now the
    lease is given back and the next tick claims the partition whole."""
    bus, admin = await connect(nats_server, "pfeed"), await connect(nats_server, "pfeed-admin")
    heard: list[str] = []
    acquired: list[int] = []
    released: list[int] = []

    async def handle(sig: m.Signal, msg) -> None:
        heard.append(sig.id)

    async def on_acquire(p: int) -> None:
        acquired.append(p)

    async def on_release(p: int) -> None:
        released.append(p)

    feed = partition.Feed("KTA_PFEED", "pfeed", "pfeed.u.*", m.Signal, handle)
    part = partition.Partitions(bus, "pfeed", [feed], instance="w", count=2, lease_seconds=30.0,
                                bucket="kta_leases_feed", on_acquire=on_acquire, on_release=on_release)
    try:
        await part.start()  # the stream is not there yet: no consumer can be made
        assert part.owned == set() and sorted(acquired) == sorted(released) == [0, 1]
        leases = await admin.kv("kta_leases_feed", ttl=30.0)
        assert [k for k in await live_keys(leases) if ".p" in k] == []  # given back, not held by a feedless owner

        await admin.js.add_stream(name="KTA_PFEED", subjects=["pfeed.u.>"])
        await part.tick()
        assert part.owned == {0, 1}
        for p in (0, 1):
            await admin.js.publish(partition.feed_subject("pfeed.u.X", p), msgspec.msgpack.encode(
                m.Signal(id=f"s{p}", user_id="DEMO01", strategy_id="a", strategy="rsi", exchange="NSE",
                         tradingsymbol="INFY", instrument_token=1, transaction_type="BUY", quantity=1)))
        await eventually(lambda: sorted(heard) == ["s0", "s1"], what="each partition's feed running")
    finally:
        await _close([part], [bus, admin])


async def test_close_ends_a_loop_that_lost_its_first_cancel(nats_server):
    """Python 3.11's wait_for can lose a cancel racing its inner result (nats-py's KV calls wait so, inside a
    tick): the loop goes on to its next wait. close() cancels it again, so a worker stopped during a tick ends;
    cancelled once and awaited, close() waited for ever. Here the tick's claim hook loses the cancel, as
    wait_for does when its inner future has won the race."""
    buses = [await connect(nats_server, f"lostcancel{i}") for i in range(2)]
    claimed = LosesFirstCancel()  # b's loop claims what a releases: the claim waits there
    kw = dict(lease_seconds=30.0, bucket="kta_leases_lostcancel")
    a = partition.Partitions(buses[0], "plost", instance="w0", **kw)
    b = partition.Partitions(buses[1], "plost", instance="w1", on_acquire=claimed, **kw)
    try:
        await a.start()
        await b.start()  # under its share with nothing free: it claims what a releases
        assert len(a.owned) == partition.PARTITIONS and b.owned == set()
        await a.close()  # its leases deleted: b's loop claims one and waits in the hook
        await eventually(claimed.waiting.is_set, timeout=10, what="b's loop claiming a released partition")
        assert await ends_within(b.close()), "close() still waiting for a loop that lost its first cancel"
        assert claimed.went_on.is_set() and b._loop.done()
    finally:
        await _close([a, b], buses)


async def test_leases_claimed_in_a_long_tick_are_renewed_while_it_claims_the_next(nats_server):
    """A claim opens its users' desks and makes its feeds' consumers, ~1 s each on a loaded machine: a tick
    claiming five outlived the first lease (a peer took it and a user's Start met desk_moved). Each claim here
    takes a fifth of the lease; none is lost while the tick claims the rest."""
    bus = await connect(nats_server, "pslow")
    released: list[int] = []

    async def slow_acquire(p: int) -> None:
        await asyncio.sleep(0.6)  # the work of a claim (desks, consumers), not a wait for an event

    async def on_release(p: int) -> None:
        released.append(p)

    part = partition.Partitions(bus, "pslow", instance="w", lease_seconds=3.0, bucket="kta_leases_slow",
                                on_acquire=slow_acquire, on_release=on_release)
    try:
        await part.start()  # eight claims, 4.8 s in one tick: past the first lease's 3 s
        assert part.owned == set(range(partition.PARTITIONS))
        await part.tick()
        assert released == [] and part.owned == set(range(partition.PARTITIONS))
    finally:
        await part.close()
        await bus.close()


async def test_a_handler_stuck_while_its_partition_is_released_costs_no_other_lease(nats_server):
    """A release waits up to the ack wait (8 s) for its feeds' handlers; it waited holding the lock, the worker's
    other leases unrenewed past their TTL: a handler stuck during a rebalance cost every other partition (a peer
    took them, users' commands met desk_moved). Now they are renewed while it waits: over a lease and more of
    renewals of partition 0 come, each naming this instance, while partition 1's handler is still stuck — and of
    partition 1 itself, which a peer must not claim (and start a feed of) while that handler still runs."""
    bus, admin = await connect(nats_server, "pstuck"), await connect(nats_server, "pstuck-admin")
    entered, unblock, released = asyncio.Event(), asyncio.Event(), []
    handler_cancelled = False

    async def handle(sig: m.Signal, msg) -> None:
        nonlocal handler_cancelled
        entered.set()
        try:
            await unblock.wait()
        except asyncio.CancelledError:
            handler_cancelled = True
            raise

    async def on_release(p: int) -> None:
        released.append(p)

    lease = 3.0
    await admin.js.add_stream(name="KTA_PSTUCK", subjects=["pstuck.u.>"])
    feed = partition.Feed("KTA_PSTUCK", "pstuck", "pstuck.u.*", m.Signal, handle)
    part = partition.Partitions(bus, "pstuck", [feed], instance="w", count=2, lease_seconds=lease,
                                bucket="kta_leases_stuck", on_release=on_release)
    handovers: list[m.PartitionHandover] = []
    sub = await admin.subscribe(s.partitions("pstuck"), m.PartitionHandover, lambda ev, msg: _append(handovers, ev))
    try:
        await part.start()
        assert part.owned == {0, 1}
        await admin.js.publish(partition.feed_subject("pstuck.u.X", 1), msgspec.msgpack.encode(
            m.Signal(id="stuck", user_id="DEMO01", strategy_id="a", strategy="rsi", exchange="NSE",
                     tradingsymbol="INFY", instrument_token=1, transaction_type="BUY", quantity=1)))
        await asyncio.wait_for(entered.wait(), 15)
        leases = await admin.kv("kta_leases_stuck", ttl=lease)
        await leases.put("pstuck.m.peer", b"1")  # a peer joins: share 1 of 2, partition 1 is surplus
        ticking = asyncio.create_task(part.tick())
        await eventually(lambda: any(not h.released for h in handovers), what="partition 1 being given up")

        renewals: dict[int, set[int]] = {0: set(), 1: set()}

        async def renewed_past_a_lease() -> bool:
            for p in (0, 1):  # 1 too: held until its feed stops, or a peer would start one beside its stuck handler
                entry = await leases.get(f"pstuck.p{p}")  # aged out (KeyNotFoundError) if its renewals stopped
                assert entry.value == b"w"
                renewals[p].add(entry.revision)
            assert not handler_cancelled and not ticking.done(), "the release ended before a lease had passed"
            # the first seen may be the tick's own; three more, each a third of a lease or more after the last: a lease
            return all(len(revisions) >= 4 for revisions in renewals.values())

        await eventually(renewed_past_a_lease, timeout=30, what="partition 0 renewed while partition 1 is released")
        assert released == [] and 0 in part.owned
        unblock.set()
        await asyncio.wait_for(ticking, 15)
        assert released == [1] and part.owned == {0}
        assert (await leases.get("pstuck.p0")).value == b"w"
    finally:
        unblock.set()
        await sub.unsubscribe()
        await _close([part], [bus, admin])


async def _append(into: list, item) -> None:
    into.append(item)
