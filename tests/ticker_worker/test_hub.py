"""TickerHub against kite_sim and a real nats-server: sockets dropped every second, Kite's
per-connection token limit, order updates exactly once, one tick per token for many users."""

from __future__ import annotations

from collections import Counter

import msgspec
import pytest

from shared import messages as m
from shared import subjects
from shared.broker_sessions import LiveSession
from shared.kite.client import KiteClient
from tests.helpers import eventually
from tests.simkit import login
from tests.ticker_worker.test_ticker_worker import stored
from ticker_worker.hub import TickerHub, TokenLimitExceeded

pytestmark = pytest.mark.slow(seconds=15)

NIFTY, INFY, RELIANCE, ITC, TCS, HDFCBANK = 256265, 408065, 738561, 424961, 2953217, 341249


def live(sim, user_id: str, password: str) -> LiveSession:
    token = login(sim, user_id, password)
    return LiveSession(m.BrokerSession(user_id=user_id, api_key=sim.api_key, access_token_enc=""), token)


@pytest.fixture
async def hub(bus, sim):
    sim.reset_faults()
    h = TickerHub(bus, sim.ws_root)
    yield h
    await h.close()
    sim.reset_faults()


class TickLog:
    def __init__(self) -> None:
        self.by_token: dict[int, list[m.Tick]] = {}

    async def __call__(self, tick: m.Tick, msg) -> None:
        self.by_token.setdefault(tick.instrument_token, []).append(tick)

    def after(self, token: int, ns: int) -> list[m.Tick]:
        return [t for t in self.by_token.get(token, []) if t.received_at > ns]


async def test_drops_every_second_resubscribe_each_token_in_its_mode_and_report_gaps(bus, sim, hub):
    ticks = TickLog()
    await bus.subscribe(subjects.ALL_TICKS, m.Tick, ticks)
    events = await bus.js.subscribe(stored(subjects.broker_events("DEMO01"), "DEMO01"),
                                    stream=subjects.STREAM_BROKER, deliver_policy="new")
    await hub.session_changed("DEMO01", live(sim, "DEMO01", "demo"))
    modes = {INFY: "full", RELIANCE: "quote", NIFTY: "ltp"}
    for token, mode in modes.items():
        await hub.subscribe("DEMO01", [token], mode)
    await eventually(lambda: all(ticks.by_token.get(t) for t in modes), what="first ticks")
    sim.faults(drop_ws_every=1.0)

    reconnects: list[m.BrokerEvent] = []
    while len(reconnects) < 2:
        ev = msgspec.msgpack.decode((await events.next_msg(timeout=15)).data, type=m.BrokerEvent)
        if ev.kind == "reconnected":
            reconnects.append(ev)
            for token, mode in modes.items():  # every token back, in its own mode, after this gap
                got = await eventually(lambda: ticks.after(token, ev.gap_end), what=f"{token} after reconnect")
                assert {t.mode for t in got} == {mode}
    for ev in reconnects:
        assert 0 < ev.gap_start < ev.gap_end and 0 < ev.gap_seconds < 10 and ev.attempt >= 1
    assert reconnects[1].gap_start > reconnects[0].gap_end  # two separate drops, two gaps
    assert hub.feeds["DEMO01"].tickers[0].connects >= 3


async def test_tokens_over_the_connection_limit_spread_over_connections(bus, sim, hub):
    hub.max_tokens, hub.max_connections = 2, 3
    ticks = TickLog()
    await bus.subscribe(subjects.ALL_TICKS, m.Tick, ticks)
    await hub.session_changed("DEMO01", live(sim, "DEMO01", "demo"))
    tokens = [INFY, RELIANCE, ITC, TCS, HDFCBANK]
    await hub.subscribe("DEMO01", tokens, "quote")
    feed = hub.feeds["DEMO01"]
    assert len(feed.tickers) == 3 and sorted(len(t.modes) for t in feed.tickers) == [1, 2, 2]
    assert set().union(*(t.modes for t in feed.tickers)) == set(tokens)
    await eventually(lambda: all(ticks.by_token.get(t) for t in tokens), what="ticks from all three sockets")
    await eventually(lambda: sim_connections(sim) == 3, what="three sockets at the sim")

    with pytest.raises(TokenLimitExceeded):  # 3 x 2 is full: refused whole, nothing half-subscribed
        await hub.subscribe("DEMO01", [NIFTY, 260105], "ltp")
    assert NIFTY not in hub.wanted["DEMO01"] and sum(len(t.modes) for t in feed.tickers) == 5
    await hub.unsubscribe("DEMO01", [ITC])
    await hub.subscribe("DEMO01", [NIFTY], "ltp")  # the freed slot is reused, no fourth socket
    assert len(feed.tickers) == 3 and feed.home[NIFTY] is not None


def sim_connections(sim) -> int:

    return sim.get("/sim/health", timeout=5).json()["connections"]


async def test_order_updates_reach_jetstream_exactly_once_from_two_sockets(bus, sim, hub):
    """Both of the user's sockets receive every order update: JetStream keeps one of each."""
    hub.max_tokens = 1
    subject = subjects.order_updates("DEMO01")
    attempts: Counter = Counter()

    async def on_attempt(u: m.BrokerOrderUpdate, msg) -> None:
        attempts[(u.order["order_id"], u.order["status"], u.order.get("filled_quantity"))] += 1

    await bus.subscribe(subject, m.BrokerOrderUpdate, on_attempt)  # core NATS: every publish, copies too
    js = await bus.js.subscribe(stored(subject, "DEMO01"), stream=subjects.STREAM_BROKER, deliver_policy="new")
    await hub.session_changed("DEMO01", live(sim, "DEMO01", "demo"))
    await hub.subscribe("DEMO01", [INFY, RELIANCE], "ltp")
    assert len(hub.feeds["DEMO01"].tickers) == 2
    await eventually(lambda: sim_connections(sim) == 2 and hub.feeds["DEMO01"].connected, what="two sockets")

    async with KiteClient(sim.api_key, hub.feeds["DEMO01"].live.access_token, root=sim.root) as kite:
        ids = [await kite.place_order("regular", "NSE", "INFY", "BUY", 1, "MIS", "MARKET", market_protection=-1,
                                      tag=f"once{i}") for i in range(3)]
    done = {(oid, "COMPLETE", 1) for oid in ids}
    await eventually(lambda: all(attempts[k] == 2 for k in done), what="both sockets delivered every fill")

    stored_updates: Counter = Counter()
    while True:
        msg = await js.next_msg(timeout=5)
        u = msgspec.msgpack.decode(msg.data, type=m.BrokerOrderUpdate)
        stored_updates[(u.order["order_id"], u.order["status"], u.order.get("filled_quantity"))] += 1
        if msg.metadata.num_pending == 0 and done <= set(stored_updates):
            break
    assert set(stored_updates) == set(attempts) and {k[0] for k in stored_updates} == set(ids)
    assert set(stored_updates.values()) == {1}, stored_updates  # exactly once each...
    assert set(attempts.values()) == {2}  # ...although every update was published twice
    assert hub.duplicate_updates == len(attempts)


async def test_two_users_on_one_token_publish_each_tick_once(bus, sim, hub):
    ticks = TickLog()
    await bus.subscribe(subjects.ticks(INFY), m.Tick, ticks)
    await hub.session_changed("DEMO01", live(sim, "DEMO01", "demo"))
    await hub.session_changed("DEMO02", live(sim, "DEMO02", "demo2"))
    await hub.subscribe("DEMO01", [INFY], "quote")
    await hub.subscribe("DEMO02", [INFY], "quote")
    await eventually(lambda: len(ticks.by_token.get(INFY, [])) >= 12, what="a dozen INFY ticks")
    seen = Counter((t.last_price, t.volume_traded, t.total_buy_quantity, t.total_sell_quantity)
                   for t in ticks.by_token[INFY])
    assert max(seen.values()) == 1, "a tick was published twice"
    assert hub.copies >= 10  # the second user's socket did deliver the same ticks: they were dropped
    assert all(INFY in f.tickers[0].modes for f in hub.feeds.values()) and len(hub.feeds) == 2
