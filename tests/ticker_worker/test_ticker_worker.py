"""The ticker worker against kite_sim and a real nats-server."""

import asyncio

import msgspec

from shared import messages as m
from shared import partition, subjects
from shared.kite.client import KiteClient
from shared.broker_sessions import put_session, vault_for
from tests.helpers import eventually, running, stack_settings, wait_health
from tests.simkit import login
from ticker_worker.main import amain as ticker_main


def stored(subject: str, user_id: str) -> str:
    """The subject JetStream stores ``subject`` under (KTA_BROKER is partitioned by user)."""
    return partition.feed_subject(subject, partition.of(user_id))


async def test_ticks_order_updates_and_reconnects(bus, sim, data_dir):
    settings = stack_settings(bus.nc.connected_url.geturl(), data_dir, sim)
    sim.reset_faults()
    token = login(sim)
    ticks: dict[int, list[m.Tick]] = {}

    async def on_tick(t, msg):
        ticks.setdefault(t.instrument_token, []).append(t)

    await bus.subscribe(subjects.ALL_TICKS, m.Tick, on_tick)
    events = await bus.js.subscribe(stored(subjects.broker_events("DEMO01"), "DEMO01"), stream=subjects.STREAM_BROKER,
                                  deliver_policy="new")
    updates = await bus.js.subscribe(stored(subjects.order_updates("DEMO01"), "DEMO01"), stream=subjects.STREAM_BROKER,
                                  deliver_policy="new")

    async with running(ticker_main, settings):
        await wait_health(bus, "ticker")
        await put_session(bus, vault_for(settings), "DEMO01", sim.api_key, token)
        replies = await bus.gather(subjects.cmd("DEMO01", "live", "start"),
                                   m.StartLive(tokens=[256265, 408065], mode=m.TickMode.FULL), expect={"ticker"})
        if isinstance(replies.get("ticker"), m.Error):  # the session watch may not have caught up yet
            await asyncio.sleep(0)
            replies = {"ticker": await eventually(lambda: _start(bus), what="ticker accepts StartLive")}
        assert isinstance(replies["ticker"], m.Ok)
        await eventually(lambda: len(ticks.get(256265, [])) >= 2 and len(ticks.get(408065, [])) >= 2, what="ticks")
        infy = ticks[408065][-1]
        assert infy.mode == "full" and infy.depth is not None and infy.exchange_timestamp
        assert ticks[256265][-1].tradable is False

        # an order placed at the broker comes back as order updates on JetStream
        async with KiteClient(sim.api_key, token, root=sim.root) as kite:
            oid = await kite.place_order("regular", "NSE", "INFY", "BUY", 1, "MIS", "MARKET", market_protection=-1)
        seen = []
        while not any(u.order["status"] == "COMPLETE" for u in seen):
            msg = await updates.next_msg(timeout=10)
            seen.append(msgspec.msgpack.decode(msg.data, type=m.BrokerOrderUpdate))
        assert {u.order["order_id"] for u in seen} == {oid}
        assert len({(u.order["status"], u.order["filled_quantity"]) for u in seen}) == len(seen)  # once each

        # the sim drops every socket: the worker reconnects, resubscribes in full mode and reports the gap
        sim.admin("drop_ws")
        kinds = []
        while "reconnected" not in kinds:
            ev = msgspec.msgpack.decode((await events.next_msg(timeout=15)).data, type=m.BrokerEvent)
            kinds.append(ev.kind)
        assert ev.gap_end > ev.gap_start > 0
        before = len(ticks[408065])
        await eventually(lambda: len(ticks[408065]) > before + 1, what="ticks after the reconnect")
        assert ticks[408065][-1].mode == "full"


async def _start(bus):
    r = await bus.request(subjects.cmd("DEMO01", "live", "start"),
                          m.StartLive(tokens=[256265, 408065], mode=m.TickMode.FULL))
    return r if isinstance(r, m.Ok) else None


async def test_dead_token_goes_to_the_expired_path(bus, sim, data_dir):
    settings = stack_settings(bus.nc.connected_url.geturl(), data_dir, sim)
    events = await bus.js.subscribe(stored(subjects.broker_events("DEMO02"), "DEMO02"), stream=subjects.STREAM_BROKER,
                                  deliver_policy="new")
    async with running(ticker_main, settings):
        await wait_health(bus, "ticker")
        await put_session(bus, vault_for(settings), "DEMO02", sim.api_key, "not-a-real-token")
        kinds = []
        while "token_expired" not in kinds:
            kinds.append(msgspec.msgpack.decode((await events.next_msg(timeout=15)).data, type=m.BrokerEvent).kind)
        assert "reconnecting" not in kinds  # no retry storm against a dead token
