"""How partition leases are held and watched, over a real nats-server: an idle worker's requests are its renewals
(the others' leases come to it by a KV watch), a take-over creates every lease it takes before it starts the first
partition."""

from __future__ import annotations

from shared import partition
from shared.kv_keys import live_entries
from tests.helpers import connect, eventually


async def test_a_take_over_holds_every_lease_it_takes_before_it_starts_the_first(nats_server):
    """A peer stops cleanly: the survivor creates the leases of all its partitions first, then starts them (desks,
    feeds; ~1 s each on a loaded machine). One after the other, the last ones stayed free meanwhile, their users
    unanswered until every earlier start was done."""
    buses = [await connect(nats_server, f"first{i}") for i in range(3)]
    kw = dict(lease_seconds=300.0, bucket="kta_leases_first")
    seen: list[dict[str, bytes]] = []
    b: partition.Partitions

    async def on_acquire(p: int) -> None:
        if len(b.owned) == partition.PARTITIONS // 2:  # the take-over's first start
            entries = await live_entries(await buses[2].kv("kta_leases_first", ttl=300.0), "pfirst")
            seen.append({k: e.value for k, e in entries.items() if ".p" in k})

    a = partition.Partitions(buses[0], "pfirst", instance="a", **kw)
    b = partition.Partitions(buses[1], "pfirst", instance="b", on_acquire=on_acquire, **kw)
    try:
        await a.start()
        await b.start()
        await a.tick()  # the holder sees the new member and gives half away
        await eventually(lambda: len(b.owned) == partition.PARTITIONS // 2, timeout=15, what="an even split")
        await a.close()  # announced: b takes the other half at once
        await eventually(lambda: b.owned == set(range(partition.PARTITIONS)), timeout=15, what="the take-over")
        assert seen == [{f"pfirst.p{p}": b"b" for p in range(partition.PARTITIONS)}]
    finally:
        for part in (a, b):
            await part.close()
        for bus in buses:
            await bus.close()


async def test_an_idle_worker_asks_nothing_but_its_renewals(nats_server):
    """Holding leases, each tick a worker wrote its membership and renewed its leases, then read the bucket: the
    stream's info and a get per key (19 messages sent a tick with 8 leases; 1.7 requests per order in the
    execution worker). A watch tells it the others' keys now: a tick sends 1 + 8. Counted between renewals of one
    lease, as the bucket tells them to a watcher of its own."""
    bus, admin = await connect(nats_server, "pidle"), await connect(nats_server, "pidle-admin")
    part = partition.Partitions(bus, "pidle", instance="w", lease_seconds=1.5, bucket="kta_leases_idle")
    watcher = None
    try:
        await part.start()
        assert part.owned == set(range(partition.PARTITIONS))
        watcher = await (await admin.kv("kta_leases_idle", ttl=1.5)).watch("pidle.p0")
        sent, initial = [], None
        async for entry in watcher:
            if entry is None or initial is None:  # (the watch's initial value: heard at no particular moment)
                initial = initial or entry
                continue
            sent.append(bus.nc.stats["out_msgs"])  # a renewal of p0: one a tick
            if len(sent) == 5:
                break
        per_tick = (sent[-1] - sent[0]) / (len(sent) - 1)
        assert per_tick <= 1 + partition.PARTITIONS + 3, f"{per_tick} messages sent a tick"
    finally:
        if watcher is not None:
            await watcher.stop()
        await part.close()
        await bus.close()
        await admin.close()


async def test_a_worker_whose_lease_watch_stops_watches_afresh(nats_server):
    """The watch stops telling (a reconnect to a restarted server, a consumer lost): the worker's own writes no
    longer come back through it, so it watches afresh — here it learns of a joiner and gives it its share."""
    buses = [await connect(nats_server, f"afresh{i}") for i in range(2)]
    kw = dict(lease_seconds=1.5, bucket="kta_leases_afresh")
    a, b = (partition.Partitions(bus, "pafresh", instance=f"w{i}", **kw) for i, bus in enumerate(buses))
    try:
        await a.start()
        assert a.owned == set(range(partition.PARTITIONS))
        await a._view._watcher.stop()  # the watch tells nothing more
        await b.start()
        await eventually(lambda: len(a.owned) == len(b.owned) == partition.PARTITIONS // 2, timeout=15,
                         what="the joiner's share, once the holder watches afresh")
    finally:
        for part in (a, b):
            await part.close()
        for bus in buses:
            await bus.close()
