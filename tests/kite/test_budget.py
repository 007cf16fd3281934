"""One rate budget per api_key across processes: two real processes reading through one api_key at
once stay within Kite's 10 requests/s together (and kite_sim, which enforces it, answers no 429); the
same two with a budget each exceed it. Plus the rule the budget shares with the in-process limiter."""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from shared import subjects
from shared.kite.budget import LEASE, SharedBudget, budget_key
from shared.kite.ratelimit import LIMITS, RateLimiter, next_slot
from tests.helpers import NATS_CREDS
from tests.simkit import login

pytestmark = pytest.mark.slow(seconds=11)

ROOT = Path(__file__).resolve().parents[2]
READS = 15  # per process: 30 "other" requests, three seconds' worth of Kite's 10/s


async def burst(nats_url: str, bus, sim, mode: str, go: str) -> list[tuple[float, int]]:
    """Two processes, started, synchronised on ``go`` over NATS, each sending READS reads at once."""
    token = login(sim)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("KTA_")}, "PYTHONPATH": str(ROOT),
           "KTA_NATS_CREDS": str(Path(NATS_CREDS[nats_url]) / "admin.creds")}  # the bus requires an identity
    procs = [await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.kite.budget_client", nats_url, sim.root, sim.api_key, token, str(READS), mode, go,
        cwd=ROOT, env=env, stdout=subprocess.PIPE) for _ in range(2)]
    try:
        for p in procs:
            assert (await asyncio.wait_for(p.stdout.readline(), 60)).strip() == b"ready"
        await bus.nc.publish(go, b"")
        results = [json.loads(await asyncio.wait_for(p.stdout.readline(), 90)) for p in procs]
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
            await p.wait()
    assert all(r["fallbacks"] == 0 for r in results)
    return sorted((at, status) for r in results for at, status, _p in r["sent"])


def busiest_second(sent: list[tuple[float, int]]) -> int:
    times = [at for at, _ in sent]
    return max(sum(1 for t in times if start <= t < start + 1.0) for start in times)


async def test_two_processes_sharing_an_api_key_never_exceed_10_requests_a_second_together(nats_url, bus, sim):
    """Measured where it is decided, at the senders: no one-second window of the two processes' send
    times together holds more than 10 requests. (kite_sim counts arrivals per calendar second; on a
    loaded machine a request can arrive later than the margin allows for, so its 429s are shown, not
    asserted: a 429 that still arrives is retried.)"""
    sim.reset_faults()
    shared = await burst(nats_url, bus, sim, "shared", "test.budget.go.shared")
    answered = [status for _, status in shared]
    assert answered.count(200) == 2 * READS and busiest_second(shared) <= 10, shared

    apart = await burst(nats_url, bus, sim, "local", "test.budget.go.local")  # each process its own "10/s"
    assert busiest_second(apart) > 10
    print(f"429s from kite_sim: shared budget {answered.count(429)}, a budget per process "
          f"{[status for _, status in apart].count(429)}")


async def test_claims_from_many_callers_at_once_never_share_a_slot(bus):
    """Two budgets of one api_key (as two processes hold), 12 quote slots claimed at once: Kite's
    1 quote/s means every claimed slot is a window apart from the one before it."""
    clock = [1_800_000_000.0]
    one, two = (SharedBudget(bus, "test-budget-key", clock=lambda: clock[0]) for _ in range(2))
    one.ahead = two.ahead = math.inf  # (as if each caller came back nearer its time)
    claimed: list[float] = []

    async def claim(budget: SharedBudget) -> None:
        at, _, taken = await budget._claim_kv("quote", budget.limits["quote"])
        assert taken
        claimed.append(at)

    await asyncio.gather(*(claim(one if i % 2 else two) for i in range(12)))
    claimed.sort()
    assert len(set(claimed)) == 12 and all(b - a >= 1.0 for a, b in zip(claimed, claimed[1:]))
    assert one.conflicts + two.conflicts > 0  # they did race, and the compare-and-set sorted it out


async def test_a_slot_is_never_reserved_more_than_a_second_ahead(bus):
    """A process that stops leaves at most a second of reservations for the others to wait out."""
    now = 1_800_000_100.0
    budget = SharedBudget(bus, "test-budget-ahead", clock=lambda: now)
    assert await budget._claim_kv("quote", budget.limits["quote"]) == (now, now, True)
    at, _, taken = await budget._claim_kv("quote", budget.limits["quote"])
    assert not taken and at == now + 1.0 + budget.margin  # the caller waits and claims it nearer the time
    entry = await (await bus.kv(subjects.KV_RATE_BUDGET)).get(budget_key("test-budget-ahead", "quote"))
    assert msgspec.msgpack.decode(entry.value) == [now]


def test_next_slot_keeps_every_window_under_its_limit():
    windows = LIMITS["orders"]
    sent: list[float] = []
    for _ in range(450):
        sent.append(next_slot(sent, windows, now=100.0))
    for start in sent:
        assert sum(1 for t in sent if start <= t < start + 1.0) <= 10
        assert sum(1 for t in sent if start <= t < start + 60.0) <= 400
    assert sent == sorted(sent)  # first come, first served


async def test_a_caller_that_wakes_too_late_for_its_slot_claims_a_fresh_one():
    """A slot used 0.5 s late would crowd the next window: the caller gives it up and claims another."""
    times = iter([100.0, 100.5, 100.5, 100.5])  # claim, wake-up check (late), claim again, check (once)
    limiter = RateLimiter({"other": [(1, 10)]}, clock=lambda: next(times))
    await limiter.acquire("other")
    assert limiter.late == 1 and list(limiter._sent["other"]) == [100.0, 100.5]


async def test_a_process_alone_on_its_api_key_claims_with_one_kv_request_and_a_conflict_rereads(bus):
    """Issue #18 (NATS messages per order): while no other process claims through the key, a claim is one
    compare-and-set on the entry this process wrote last, not a read and a write; when another process
    claimed meanwhile, the compare-and-set fails and the entry is read again — no slot is ever shared."""
    clock = [1_800_000_200.0]
    one, two = (SharedBudget(bus, "test-budget-alone", clock=lambda: clock[0]) for _ in range(2))
    windows = one.limits["quote"]
    claimed = [(await one._claim_kv("quote", windows))[0]]  # the first: a read (not found) and a create
    for _ in range(3):
        clock[0] += 1.5
        sent = bus.nc.stats["out_msgs"]
        at, _, taken = await one._claim_kv("quote", windows)
        assert taken and bus.nc.stats["out_msgs"] - sent == 1  # the update alone (before: a get besides)
        claimed.append(at)
    clock[0] += 1.5
    at, _, taken = await two._claim_kv("quote", windows)  # another process claims through the same key
    assert taken
    claimed.append(at)
    clock[0] += 1.5
    at, _, taken = await one._claim_kv("quote", windows)
    assert taken and one.conflicts == 1  # its compare-and-set failed, and it read the entry again
    claimed.append(at)
    assert sorted(claimed) == claimed and all(b - a >= 1.0 for a, b in zip(claimed, claimed[1:]))
    entry = await (await bus.kv(subjects.KV_RATE_BUDGET)).get(budget_key("test-budget-alone", "quote"))
    assert msgspec.msgpack.decode(entry.value)[-1] == claimed[-1]  # the last claim is what the key holds


async def test_a_process_alone_on_its_key_serves_a_burst_of_reads_from_one_claim(bus):
    """Issue #18: an account's orders fill together and each fill's trades are read — a burst of reads of one
    key, one compare-and-set each before. Alone on the key, the first claim of a burst also takes a lease of
    SPARES slots and the burst's next reads use it: one KV request for three reads. Slots of a lease left
    unused are struck from the entry by the process's next write."""
    clock = [1_800_000_300.0]
    budget = SharedBudget(bus, "test-budget-burst", clock=lambda: clock[0])
    windows = budget.limits["other"]
    await budget._claim("other", windows)  # the first: a read (not found) and a create, no lease (alone unknown)
    clock[0] += 1.5
    start, sent = clock[0], bus.nc.stats["out_msgs"]
    for _ in range(3):  # three reads within 0.2 s
        assert (await budget._claim("other", windows))[2]
        clock[0] += 0.1
    assert bus.nc.stats["out_msgs"] - sent == 1 and budget.leased == 2
    kv = await bus.kv(subjects.KV_RATE_BUDGET)
    lease = start + LEASE - budget.margin  # the latest a leased slot may be sent: where every window counts it
    assert msgspec.msgpack.decode((await kv.get(budget_key("test-budget-burst", "other"))).value) \
        == [start, lease, lease]  # (the first claim's slot is out of every window by now)
    clock[0] = start + 0.7  # the next burst: this lease is used up; the next one lapses unused
    await budget._claim("other", windows)
    clock[0] += 0.8
    await budget._claim("other", windows)
    entry = msgspec.msgpack.decode((await kv.get(budget_key("test-budget-burst", "other"))).value)
    assert entry == [start + 0.7, start + 1.5, start + 1.5 + LEASE - budget.margin,
                     start + 1.5 + LEASE - budget.margin]  # start + 0.7's two leased slots, never used, struck


def worst_windows(slots: list[tuple[float, float]], window: float = 1.0) -> int:
    """The most slots that can fall in one of Kite's windows, each sent anywhere in its (earliest, latest)."""
    starts = {latest for _, latest in slots} | {earliest - window + 1e-9 for earliest, _ in slots}
    return max(sum(1 for earliest, latest in slots if earliest < x + window and latest >= x) for x in starts)


async def test_a_lease_counts_in_every_window_its_slots_could_be_sent_in(bus):
    """The deployment-wide limit with leases: process one leases slots, process two then claims as many as it
    can; wherever one's leased slots are sent within their lease (and every slot within the margin of its
    time), no window of Kite's holds more than its 10 "other" requests. A lease lasts LEASE: once it is over
    the other process has the key's whole rate again — a process that dies leaves less than AHEAD behind."""
    clock = [1_800_000_400.0]
    one, two = (SharedBudget(bus, "test-budget-lease", clock=lambda: clock[0]) for _ in range(2))
    two.ahead, two.spares = math.inf, 0  # claims the whole queue at once, one slot a claim
    windows, margin = one.limits["other"], one.margin
    await one._claim("other", windows)
    clock[0] += 1.5
    start = clock[0]
    await one._claim("other", windows)  # its slot and a lease of two
    slots = [(start, start + margin)] + [(start, start + LEASE)] * 2
    claimed = [(await two._claim_kv("other", windows))[0] for _ in range(25)]
    slots += [(at, at + margin) for at in claimed]
    assert worst_windows(slots) <= 10, sorted(slots)
    assert one._lease[budget_key("test-budget-lease", "other")] == [start + LEASE - margin] * 2
    assert claimed.count(start) == 7  # the window's free slots, the lease's two counted
    # a slot stamped at ``start`` is out of the windows at start + 1.1, a leased one at start + LEASE - 0.1 + 1.1
    assert claimed[7:17] == pytest.approx([start + 1 + margin] * 8 + [start + LEASE + 1] * 2, abs=1e-6)


async def test_no_lease_is_taken_on_a_key_another_process_claims_through(bus):
    """A lease is for a process alone on its key: after a conflict (another process wrote the entry) claims take
    one slot each for CONTENDED seconds, so slots one process may not use are not kept from the others."""
    clock = [1_800_000_500.0]
    one, two = (SharedBudget(bus, "test-budget-shared", clock=lambda: clock[0]) for _ in range(2))
    windows = one.limits["other"]
    await one._claim("other", windows)
    await two._claim("other", windows)  # the other process writes the entry
    clock[0] += 1.5
    await one._claim("other", windows)  # a conflict: re-read, one slot
    clock[0] += 1.5
    await one._claim("other", windows)  # its own entry again, but the key is shared: still one slot
    assert one.conflicts == 1 and not one._lease.get(budget_key("test-budget-shared", "other"))
    entry = await (await bus.kv(subjects.KV_RATE_BUDGET)).get(budget_key("test-budget-shared", "other"))
    assert msgspec.msgpack.decode(entry.value) == [clock[0]]  # its slot alone (the one before is out of the window)
