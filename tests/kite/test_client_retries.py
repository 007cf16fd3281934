"""KiteClient's client-side rate limits (no 429 drawn, a daily cap refused) and its retries against a real
kite_sim and stand-in brokers: reads retried with backoff, calls the broker provably did not take sent again,
and an order whose answer was lost never sent twice."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest

from shared import natsd
from shared.kite import errors
from shared.kite import models as km
from shared.kite.client import KiteClient
from shared.kite.connection import PLACE_RETRIES, READ_RETRIES
from shared.kite.ratelimit import DailyLimitReached, RateLimiter, for_api_key
from tests.helpers import eventually
from tests.kite.kit import INFY, RecordingTransport, http_server, tagged
from tests.simkit import login

pytestmark = pytest.mark.slow(seconds=30)


async def test_client_limiter_never_triggers_a_429(sim):
    """A burst of quote calls through the client's limiter: no 429 from the sim, whose own limiter
    enforces Kite's 1 quote/s; without the limiter the same burst does draw a 429 (and the read is
    retried with backoff until it succeeds)."""
    sim.reset_faults()
    token = login(sim)
    wire = RecordingTransport()
    async with KiteClient(sim.api_key, token, root=sim.root, transport=wire,
                          rate_limiter=for_api_key(sim.api_key)) as kite:
        await kite.quote(INFY)  # (may meet a quote of another test file's client: not counted)
        wire.exchanges.clear()
        waits = kite.limiter.waits
        for _ in range(4):
            assert INFY in await kite.quote(INFY)
        assert wire.count(prefix="/quote", status=429) == 0 and wire.count(prefix="/quote", status=200) == 4
        assert kite.limiter.waits - waits >= 3

    unlimited = RateLimiter({cls: [(1, 10_000)] for cls in ("quote", "historical", "orders", "other")})
    raw = RecordingTransport()
    async with KiteClient(sim.api_key, token, root=sim.root, transport=raw, rate_limiter=unlimited) as kite:
        for _ in range(3):
            assert INFY in await kite.quote(INFY)
    assert raw.count(prefix="/quote", status=429) >= 1  # the sim does enforce the limit...
    assert raw.count(prefix="/quote", status=200) == 3  # ...and every read got through after backoff


async def test_concurrent_bursts_of_orders_and_reads_stay_under_the_limits(sim):
    """Two clients of one api_key, 14 order placements and 24 other reads at once: Kite allows
    10 orders/s and 10 other requests/s per api_key; the shared client limiter keeps both under."""
    sim.reset_faults()
    token = login(sim)
    a, b = RecordingTransport(), RecordingTransport()
    budget = for_api_key(sim.api_key)  # every client of one key, one budget
    async with KiteClient(sim.api_key, token, root=sim.root, transport=a, rate_limiter=budget) as one, \
            KiteClient(sim.api_key, token, root=sim.root, transport=b, rate_limiter=budget) as two:
        ltp = {h.tradingsymbol: h.last_price for h in await one.holdings()}["INFY"]  # (quotes: another test's)
        price = round(ltp * 0.95, 1)
        placed = await asyncio.gather(*(
            (one if i % 2 else two).place_order("regular", "NSE", "INFY", "BUY", 1, "MIS", "LIMIT", price=price,
                                                tag=f"burst{i}") for i in range(14)))
        reads = await asyncio.gather(*((one if i % 2 else two).margins("equity") for i in range(24)))
        assert len(set(placed)) == 14 and all(r.enabled for r in reads)
        for oid in placed:
            await one.cancel_order("regular", oid)
    assert a.count(status=429) + b.count(status=429) == 0, a.exchanges + b.exchanges


async def test_daily_order_cap_is_refused_not_waited_for():
    limiter = RateLimiter({"orders": [(1, 100), (86400, 3)]}, clock=lambda: 1_800_000_000.0)
    for _ in range(3):
        await limiter.acquire("orders")
    with pytest.raises(DailyLimitReached):
        await limiter.acquire("orders")
    tomorrow = RateLimiter({"orders": [(86400, 1)]}, clock=iter([1_800_000_000.0] * 2 + [1_800_086_400.0] * 2).__next__)
    await tomorrow.acquire("orders")
    await tomorrow.acquire("orders")  # a new IST day, a new budget


async def test_a_429_on_a_read_is_retried_with_backoff_a_bounded_number_of_times(kite, sim):
    sim.faults(rate_limit_next=2)
    assert isinstance(await kite.positions(), km.Positions)
    assert [st for _, p, st in kite.wire.exchanges if p == "/portfolio/positions"] == [429, 429, 200]

    sim.faults(rate_limit_next=READ_RETRIES + 1)
    with pytest.raises(errors.TooManyRequests) as e:
        await kite.holdings()
    assert e.value.status == 429 and e.value.message == "Too many requests"
    assert kite.wire.count(prefix="/portfolio/holdings", status=429) == READ_RETRIES + 1


async def test_a_429_on_placement_is_sent_again_without_a_lookup(kite, sim):
    """A 429 comes from Kite's gateway before the OMS sees the order: sending it again cannot duplicate."""
    sim.faults(rate_limit_next=1)
    oid = await kite.place_order("regular", "NSE", "INFY", "BUY", 1, "MIS", "LIMIT", price=1000.0, tag="r429-tagged")
    assert [(m, st) for m, p, st in kite.wire.exchanges if p.startswith("/orders")] == [("POST", 429), ("POST", 200)]
    assert [o.order_id for o in await kite.orders() if o.tag == "r429-tagged"] == [oid]

    sim.faults(rate_limit_next=PLACE_RETRIES + 1)
    with pytest.raises(errors.TooManyRequests) as e:  # bounded: the 429s outlast the retries
        await kite.place_order("regular", "NSE", "INFY", "BUY", 1, "MIS", "LIMIT", price=1000.0, tag="r429-gave-up")
    assert e.value.status == 429
    assert [o for o in await kite.orders() if o.tag == "r429-gave-up"] == []


async def test_a_429_on_modify_or_cancel_is_sent_again_after_a_backoff(kite, sim):
    """Kite's 429 on a modification or a cancel also comes before the OMS: it is sent again (bounded),
    so a burst of cancels (a square-off) does not leave a stop standing for want of a retry."""
    below = round(int((await kite.ltp(INFY))[INFY].last_price * 0.97 * 20) / 20, 2)  # rests, inside the band
    oid = await kite.place_order("regular", "NSE", "INFY", "BUY", 1, "MIS", "LIMIT", price=below, tag="m429")
    assert (await kite.order_history(oid))[-1].status == "OPEN"
    sim.faults(rate_limit_next=1)
    assert await kite.modify_order("regular", oid, price=below - 0.05) == oid
    sim.faults(rate_limit_next=2)
    assert await kite.cancel_order("regular", oid) == oid
    calls = [(m, st) for m, p, st in kite.wire.exchanges if p == f"/orders/regular/{oid}"]
    assert calls == [("PUT", 429), ("PUT", 200), ("DELETE", 429), ("DELETE", 429), ("DELETE", 200)]
    assert (await kite.order_history(oid))[-1].status == "CANCELLED"


async def test_a_connection_that_never_opens_is_retried_and_sends_nothing():
    closed = f"http://127.0.0.1:{natsd.free_port()}"  # nothing listens there
    async with KiteClient("k", "t", root=closed) as kite:
        with pytest.raises(errors.NotSent) as e:
            await kite.place_order("regular", "NSE", "INFY", "BUY", 1, "MIS", "LIMIT", price=1000.0, tag="never")
    assert e.value.status == 503 and "cannot reach the broker" in e.value.message


class LateOMS:
    """A stand-in for Kite whose OMS takes the first order only when the test lets it (after the
    client gave up waiting): the order book is what the OMS has taken so far."""

    def __init__(self) -> None:
        self.book: list[dict] = []
        self.land = threading.Event()
        self.landed = threading.Event()

    def respond(self, handler) -> tuple[int, str, bytes]:
        if handler.command == "POST":
            self.land.wait(30)  # the request is in flight, the OMS has not taken it yet
            self.book.append({"order_id": "260101000000001", "status": "OPEN", "tag": "late1"})
            self.landed.set()
            body = {"order_id": "260101000000001"}
        else:
            body = list(self.book)
        return 200, "application/json", json.dumps({"status": "success", "data": body}).encode()


async def test_a_timeout_whose_order_lands_after_the_lookup_is_never_sent_twice():
    """The at-most-once rule under the race that used to duplicate: the POST times out, the tag is
    not in the book yet, the order lands afterwards. The client raises OrderUnknown and sends nothing
    more; the order that landed is the only one."""
    oms = LateOMS()
    with http_server(oms.respond) as (root, seen):
        async with KiteClient("k", "t", root=root, timeout=0.3) as kite:
            with pytest.raises(errors.OrderUnknown) as e:
                await kite.place_order("regular", "NSE", "INFY", "BUY", 1, "MIS", "LIMIT", price=1000.0, tag="late1")
            assert e.value.tag == "late1" and isinstance(e.value, errors.NetworkException)
            assert [(m, p) for _, m, p in seen] == [("POST", "/orders/regular"), ("GET", "/orders")]
            oms.land.set()
            assert await asyncio.to_thread(oms.landed.wait, 30)
            assert (await kite.find_order_by_tag("late1")).order_id == "260101000000001"
    assert [m for _, m, _p in seen].count("POST") == 1


async def test_a_lost_answer_on_kite_sim_makes_one_order_never_two(kite, sim):
    impatient = KiteClient(sim.api_key, kite.access_token, root=sim.root, timeout=0.3,
                           rate_limiter=for_api_key(sim.api_key))
    sim.faults(latency_ms=600)  # the sim takes the order after the client gave up waiting for it...
    try:
        with pytest.raises(errors.OrderUnknown):  # ...so the immediate lookup (delayed as well) cannot see it
            await impatient.place_order("regular", "NSE", "INFY", "BUY", 1, "MIS", "LIMIT", price=1000.0,
                                        tag="lost-answer1")
    finally:
        sim.reset_faults()
        await impatient.aclose()
    (order,) = await eventually(lambda: tagged(kite, "lost-answer1"), what="the order the sim took")
    assert order.tag == "lost-answer1"  # one order, never a second
