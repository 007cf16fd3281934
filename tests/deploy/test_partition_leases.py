"""How partition leases are held and watched, over a real nats-server: a take-over creates every lease it takes
before it starts the first partition."""

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
