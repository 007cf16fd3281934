"""The async KiteClient against a real kite_sim process over HTTP: every method, broker errors as
typed exceptions, egress binding, client-side rate limits and the 429 paths."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from datetime import datetime, timedelta

import httpx
import pytest

from shared import natsd
from shared.kite import errors, tls
from shared.kite import models as km
from shared.kite.client import (
    HISTORICAL_MAX_DAYS,
    PLACE_RETRIES,
    READ_RETRIES,
    KiteClient,
)
from shared.kite.ratelimit import DailyLimitReached, RateLimiter, for_api_key
from tests.helpers import eventually
from tests.kite.kit import RecordingTransport, forward_to, http_server
from tests.simkit import login, request_token

pytestmark = pytest.mark.slow(seconds=30)

INFY = "NSE:INFY"


@pytest.fixture
async def kite(sim):
    sim.reset_faults()
    transport = RecordingTransport()
    async with KiteClient(sim.api_key, login(sim), root=sim.root, transport=transport,
                          rate_limiter=for_api_key(sim.api_key)) as client:
        client.wire = transport
        yield client
    sim.reset_faults()


async def test_session_exchange_profile_and_invalidation(sim):
    expired: list[errors.TokenException] = []
    async with KiteClient(sim.api_key, root=sim.root, on_token_expired=expired.append,
                          rate_limiter=for_api_key(sim.api_key)) as kite:
        with pytest.raises(errors.TokenException) as bad:
            await kite.generate_session(request_token(sim), "not-the-secret")
        assert bad.value.status == 403 and bad.value.message

        session = await kite.generate_session(request_token(sim), sim.api_secret)
        assert isinstance(session, km.Session) and session.user_id == "DEMO01" and session.access_token
        assert kite.access_token == session.access_token and session.api_key == sim.api_key
        profile = await kite.profile()
        assert profile.user_id == "DEMO01" and "NSE" in profile.exchanges and profile.email == session.email

        assert await kite.invalidate_access_token() is True
        with pytest.raises(errors.TokenException) as dead:
            await kite.profile()
    assert dead.value.status == 403 and dead.value.message == "Incorrect `api_key` or `access_token`."
    assert expired == [dead.value]  # the expired-session hook fired, once, and nothing retried


async def test_margins_holdings_and_bad_segment(kite):
    both = await kite.margins()
    equity = await kite.margins("equity")
    assert isinstance(both, km.Margins) and both.equity.enabled and both.equity.available.cash > 0
    assert equity.available.cash == both.equity.available.cash
    with pytest.raises(errors.InputException) as e:
        await kite.margins("crypto")
    assert e.value.status == 400 and e.value.message == "Invalid segment."

    holdings = {h.tradingsymbol: h for h in await kite.holdings()}  # seeded: INFY 10 @ 1480, RELIANCE, ITC
    assert set(holdings) >= {"INFY", "RELIANCE", "ITC"} and holdings["INFY"].average_price == 1480.0
    assert holdings["INFY"].instrument_token == 408065 and holdings["INFY"].last_price > 0
    assert holdings["INFY"].isin and holdings["ITC"].quantity > 0


@pytest.fixture
async def kite2(sim):
    """The second demo user, whose book and positions no other test touches."""
    sim.reset_faults()
    async with KiteClient(sim.api_key, login(sim, "DEMO02", "demo2"), root=sim.root,
                          rate_limiter=for_api_key(sim.api_key)) as client:
        yield client


async def test_order_lifecycle_trades_positions_and_convert(kite2):
    kite = kite2
    ltp = (await kite.ltp(INFY))[INFY].last_price
    held = sum(p.quantity for p in (await kite.positions()).net if p.tradingsymbol == "INFY" and p.product == "MIS")
    resting = await kite.place_order("regular", "NSE", "INFY", "BUY", 1, "MIS", "LIMIT",
                                     price=round(ltp * 0.97, 1), tag="lc-rest")
    assert await kite.modify_order("regular", resting, price=round(ltp * 0.96, 1), quantity=2) == resting
    history = await kite.order_history(resting)
    assert [o.status for o in history][-1] == "OPEN" and history[-1].quantity == 2 and history[-1].modified
    assert await kite.cancel_order("regular", resting) == resting
    assert (await kite.order_history(resting))[-1].status == "CANCELLED"

    filled = await kite.place_order("regular", "NSE", "INFY", "BUY", 3, "MIS", "MARKET", market_protection=-1,
                                    tag="lc-fill")
    await eventually(lambda: _status(kite, filled, "COMPLETE"), what="the market order fills")
    book = {o.order_id: o for o in await kite.orders()}
    assert book[resting].status == "CANCELLED" and book[filled].tag == "lc-fill" and book[filled].filled_quantity == 3

    fills = await kite.order_trades(filled)
    assert sum(t.quantity for t in fills) == 3 and {t.order_id for t in fills} == {filled}
    assert {t.trade_id for t in fills} <= {t.trade_id for t in await kite.trades()}

    mis = [p for p in (await kite.positions()).net if p.tradingsymbol == "INFY" and p.product == "MIS"]
    assert mis and mis[0].quantity == held + 3
    assert await kite.convert_position("NSE", "INFY", "BUY", "day", mis[0].quantity, "MIS", "CNC") is True
    net = {(p.tradingsymbol, p.product): p.quantity for p in (await kite.positions()).net}
    assert ("INFY", "MIS") not in net and net[("INFY", "CNC")] == mis[0].quantity

    with pytest.raises(errors.InputException) as e:
        await kite.order_history("999999999999999")
    assert e.value.status == 400 and "order_id" in e.value.message


async def _status(kite, order_id, status):
    return (await kite.order_history(order_id))[-1].status == status


async def test_bad_orders_raise_input_exception_with_the_broker_message(kite):
    with pytest.raises(errors.InputException) as e:
        await kite.place_order("regular", "NSE", "INFY", "BUY", 0, "MIS", "LIMIT", price=100)
    assert e.value.status == 400 and e.value.message == "Invalid `quantity`."
    with pytest.raises(errors.InputException) as e:
        await kite.place_order("regular", "NSE", "INFY", "BUY", 1, "MIS", "MARKET")
    assert "market protection" in e.value.message
    with pytest.raises(errors.InputException) as e:
        await kite.place_order("regular", "NSE", "NOSUCHSCRIP", "BUY", 1, "MIS", "MARKET", market_protection=-1)
    assert e.value.message == "Invalid `tradingsymbol`."
    assert not [o for o in await kite.orders() if o.quantity == 0 or o.tradingsymbol == "NOSUCHSCRIP"]


async def test_margin_rejections_come_back_as_rejected_orders_with_the_reason(kite, sim):
    """Kite's RMS answers a margin shortfall after accepting the order (status REJECTED + message),
    not with a synchronous MarginException; the sim does the same. (The exception mapping of a
    MarginException body is tested against the official mock's error envelope.)"""
    reason = "RMS:Margin Exceeds, Required:12345.00, Available:10.00 for entity account-DEMO01"
    sim.faults(reject_next=1, reject_reason=reason)
    oid = await kite.place_order("regular", "NSE", "INFY", "BUY", 1, "MIS", "MARKET", market_protection=-1)
    last = (await kite.order_history(oid))[-1]
    assert last.status == "REJECTED" and last.status_message == reason

    huge = await kite.place_order("regular", "NSE", "INFY", "BUY", 90_000, "CNC", "MARKET", market_protection=-1)
    last = (await kite.order_history(huge))[-1]
    assert last.status == "REJECTED" and last.status_message.startswith("Insufficient funds. Required margin is")


async def test_quote_ohlc_ltp_and_instruments(kite):
    keys = [INFY, "NSE:RELIANCE", "NSE:NOPE"]
    quotes, ohlc, ltp = await kite.quote(*keys), await kite.ohlc(*keys), await kite.ltp(*keys)
    for got in (quotes, ohlc, ltp):
        assert set(got) == {INFY, "NSE:RELIANCE"}  # unknown keys are omitted, like Kite
    q = quotes[INFY]
    assert q.instrument_token == 408065 and q.last_price > 0 and q.volume >= 0 and q.ohlc.close > 0
    assert len(q.depth.buy) == 5 and q.depth.buy[0].price <= q.depth.sell[0].price
    assert q.lower_circuit_limit < q.last_price < q.upper_circuit_limit
    assert ohlc[INFY].ohlc.open > 0 and ltp["NSE:RELIANCE"].instrument_token == quotes["NSE:RELIANCE"].instrument_token

    nse = {i.tradingsymbol: i for i in await kite.instruments("NSE")}
    assert nse["INFY"].instrument_token == 408065 and nse["INFY"].exchange == "NSE" and nse["INFY"].expiry is None
    everything = await kite.instruments()
    options = [i for i in everything if i.instrument_type in ("CE", "PE")]
    assert options and all(i.expiry is not None and i.strike > 0 and i.lot_size > 1 for i in options)
    assert {i.exchange for i in everything} >= {"NSE", "NFO"}
    assert wire_ok(kite)


async def test_historical_data_is_chunked_into_the_interval_maximum(kite):
    to = datetime.now().replace(microsecond=0)
    since = to - timedelta(days=130)
    before = kite.wire.count("GET", "/instruments/historical")
    candles = await kite.historical_data(408065, since, to, "minute")
    requests = kite.wire.count("GET", "/instruments/historical") - before
    assert requests == -(-130 // HISTORICAL_MAX_DAYS["minute"]) == 3

    stamps = [c.date for c in candles]
    assert stamps == sorted(set(stamps)), "chunks overlap or are out of order"
    by_day: dict = {}
    for c in candles:
        by_day.setdefault(c.date.date(), []).append(c)
        assert c.low <= min(c.open, c.close) <= max(c.open, c.close) <= c.high
    for day, rows in by_day.items():
        gaps = {(b.date - a.date).total_seconds() for a, b in zip(rows, rows[1:])}
        assert gaps <= {60.0}, f"hole inside {day} (a chunk boundary dropped candles)"
    full_days = [rows for day, rows in by_day.items() if day not in (min(by_day), max(by_day))]  # ``since`` and
    # ``to`` carry the time of day the test runs at: their own days are partial (09:23 → 367 candles)
    assert len(full_days) > 80 and {len(r) for r in full_days} == {375}

    # the same candles as one request over a range the broker serves unchunked
    tail = await kite.historical_data(408065, to - timedelta(days=20), to, "minute")
    seen = [c for c in candles if c.date >= tail[0].date]
    assert tail[: len(seen)] == seen  # inside a session the sim's minutes go on: later candles may follow
    # bare dates cover whole days and chunk without overlap
    by_date = await kite.historical_data(408065, since.date(), to.date(), "minute")
    assert [c.date for c in by_date] == sorted({c.date for c in by_date})
    whole_days = {c.date: c for c in by_date}
    assert all(whole_days.get(c.date) == c for c in candles)  # the datetime range lies inside the dates'
    assert min(whole_days).date() == min(c.date for c in by_date).date() <= candles[0].date.date()
    with pytest.raises(errors.InputException):
        await kite.historical_data(408065, since, to, "7minute")


async def test_order_and_basket_margins(kite):
    order = {"exchange": "NSE", "tradingsymbol": "INFY", "transaction_type": "BUY", "variety": "regular",
             "product": "MIS", "order_type": "MARKET", "quantity": 10}
    [one] = await kite.order_margins([order])
    assert one.tradingsymbol == "INFY" and one.total > 0 and "gst" in one.charges

    nfo = [i for i in await kite.instruments("NFO") if i.name == "NIFTY" and i.instrument_type == "CE"]
    a, b = sorted(nfo, key=lambda i: (i.expiry, i.strike))[:2]
    legs = [{"exchange": "NFO", "tradingsymbol": i.tradingsymbol, "transaction_type": side, "variety": "regular",
             "product": "NRML", "order_type": "MARKET", "quantity": i.lot_size} for i, side in ((a, "BUY"), (b, "SELL"))]
    basket = await kite.basket_order_margins(legs)
    assert len(basket.orders) == 2 and basket.final.total <= basket.initial.total


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
    (order,) = await eventually(lambda: _tagged(kite, "lost-answer1"), what="the order the sim took")
    assert order.tag == "lost-answer1"  # one order, never a second


async def _tagged(kite, tag):
    return [o for o in await kite.orders() if o.tag == tag]


async def test_egress_bound_to_a_local_source_address(sim):
    """Each user's orders can leave from their own address: bound to 127.0.0.2 an order reaches kite_sim,
    and a server that records its peers sees the order from 127.0.0.2 and the reads from the default."""
    token = login(sim)
    async with KiteClient(sim.api_key, token, root=sim.root, local_address="127.0.0.2",
                          rate_limiter=for_api_key(sim.api_key)) as kite:
        assert (await kite.profile()).user_id == "DEMO01"
        assert await kite.place_order("regular", "NSE", "INFY", "BUY", 1, "MIS", "LIMIT", price=1000.0)
    with http_server(lambda h: (200, "application/json", ORDER_OK)) as (root, seen):
        async with KiteClient("k", "t", root=root, local_address="127.0.0.2") as bound:
            await bound.profile()
            await bound.place_order("regular", "NSE", "INFY", "BUY", 1, "MIS", "LIMIT", price=1.0)
    assert [(peer, m) for peer, m, _ in seen] == [("127.0.0.1", "GET"), ("127.0.0.2", "POST")]


ORDER_OK = b'{"status":"success","data":{"order_id":"1","user_id":"AB1234"}}'


async def test_egress_through_a_proxy(sim):
    token = login(sim)
    with http_server(forward_to) as (proxy, seen):
        async with KiteClient(sim.api_key, token, root=sim.root, proxy=proxy,
                              rate_limiter=for_api_key(sim.api_key)) as kite:
            assert (await kite.profile()).user_id == "DEMO01"
            oid = await kite.place_order("regular", "NSE", "INFY", "BUY", 1, "MIS", "LIMIT", price=1000.0)
            with contextlib.suppress(errors.InputException):  # (the sim may have rejected it: still an order call)
                await kite.cancel_order("regular", oid)
    assert [(m, p) for _, m, p in seen] == [("POST", f"{sim.root}/orders/regular"),
                                            ("DELETE", f"{sim.root}/orders/regular/{oid}")]  # reads go direct
    with pytest.raises(ValueError):  # both at once would leave one of them silently unused
        KiteClient(sim.api_key, token, root=sim.root, proxy="http://127.0.0.1:9", local_address="127.0.0.2")


@pytest.mark.parametrize("egress", [{"local_address": "192.0.2.1"},  # TEST-NET-1: no interface has it
                                    {"proxy": "http://127.0.0.1:{closed}"}])
async def test_an_unavailable_egress_refuses_orders_and_sends_nothing(sim, egress):
    egress = {k: v.format(closed=natsd.free_port()) for k, v in egress.items()}
    wire = RecordingTransport()
    async with KiteClient(sim.api_key, login(sim), root=sim.root, transport=wire,
                          rate_limiter=for_api_key(sim.api_key), **egress) as kite:
        with pytest.raises(errors.EgressUnavailable) as e:
            await kite.place_order("regular", "NSE", "INFY", "BUY", 1, "MIS", "LIMIT", price=1000.0, tag="noegress")
        assert kite.egress.describe() in e.value.message and "Nothing was sent" in e.value.message
        assert (await kite.profile()).user_id == "DEMO01"  # the reads still work: the dashboard still sees
        assert not [o for o in await kite.orders() if o.tag == "noegress"]
    assert wire.count(method="POST") == 0


def wire_ok(kite) -> bool:
    return kite.wire.count(status=429) == 0 and kite.wire.count(status=500) == 0


async def test_a_delivery_sell_without_edis_authorisation_is_428_until_the_user_authorises(sim):
    """An account without DDPI (the sim's per-account eDIS setting): a CNC sell of its holdings raises
    HoldingAuthorisationRequired with Kite's message; authorise_holdings starts the request whose page
    (on the login page's site) takes the TPIN; then the same sell goes through."""
    sim.admin("accounts", {"user_id": "DEMO01", "edis": True})
    try:
        async with KiteClient(sim.api_key, login(sim), root=sim.root, login_url=sim.login_url,
                              rate_limiter=for_api_key(sim.api_key)) as kite:
            def sell():
                return kite.place_order("regular", "NSE", "RELIANCE", "SELL", 1, "CNC", "MARKET", market_protection=2)
            with pytest.raises(errors.HoldingAuthorisationRequired) as refused:
                await sell()
            assert refused.value.status == 428 and isinstance(refused.value, errors.HoldingException)
            assert "needs authorisation at depository" in refused.value.message
            isin = next(h.isin for h in await kite.holdings() if h.tradingsymbol == "RELIANCE")
            limited = sim.admin("faults", {"rate_limit_next": 1})["counts"].get("rate_limited", 0)
            request_id = await kite.authorise_holdings([(isin, 1)])  # a 429 first: sent again, not given up
            assert sim.admin("faults", {})["counts"]["rate_limited"] == limited + 1
            url = kite.holdings_authorisation_url(request_id)
            assert url == f"{sim.root}/connect/portfolio/authorise/holdings/{sim.api_key}/{request_id}"
            async with httpx.AsyncClient(verify=tls.context()) as browser:  # the trader, on the depository's page
                assert 'id="tpin"' in (await browser.get(url)).text
                assert (await browser.post(url, data={"tpin": "123456"})).status_code == 200
            held = next(h for h in await kite.holdings() if h.tradingsymbol == "RELIANCE")
            assert held.authorised_quantity >= 1
            assert await sell()
        real = KiteClient("key", "token")
        assert real.holdings_authorisation_url("r1") == \
            "https://kite.zerodha.com/connect/portfolio/authorise/holdings/key/r1"
        await real.aclose()
    finally:
        sim.admin("accounts", {"user_id": "DEMO01", "edis": False})
