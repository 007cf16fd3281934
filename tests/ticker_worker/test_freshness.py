"""Feed freshness end to end: a live user's feed that goes silent turns ``stale`` and says so
everywhere — the ticker's status answer, its health (hence the gateway's /readyz), the Prometheus
gauge, an Alert on the user's alerts stream, the user's status subject (the dashboard refreshes its
status bar on it and shows a red pill) — and turns live again when ticks return."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from shared import messages as m
from shared import metrics, natsd, natsperms
from shared import subjects as s
from shared.broker_sessions import put_session, vault_for
from shared.market_calendar import MarketCalendar
from tests.gateway.conftest import serve
from tests.helpers import eventually, running, stack_settings, wait_health
from tests.simkit import login, start_sim
from ticker_worker.freshness import MarketHours
from ticker_worker.main import amain as ticker_main

USER = "DEMO02"
SILENT = 7_777_777  # an instrument the broker never ticks: the feed is connected and silent
INFY = 408065


@pytest.fixture(scope="module")
def own_sim(tmp_path_factory):
    s_ = start_sim(tmp_path_factory.mktemp("fresh-sim"), speed=60.0)
    yield s_
    s_.stop()


def test_market_hours_are_ist_weekdays_or_always():
    hours = MarketHours("09:15-15:30")
    monday_1000_ist = 1_764_563_400  # 2025-12-01 10:00 IST
    assert hours.open(monday_1000_ist)
    assert not hours.open(monday_1000_ist - 3600)  # 09:00
    assert not hours.open(monday_1000_ist + 6 * 3600)  # 16:00
    assert not hours.open(monday_1000_ist - 2 * 86400)  # Saturday
    assert MarketHours("always").open(monday_1000_ist - 2 * 86400)
    assert hours.open(1_792_384_200)  # Monday 19 Oct 2026 10:00 IST
    assert not hours.open(1_792_470_600)  # Tuesday 20 Oct 2026 10:00 IST: an exchange holiday, no ticks expected


async def test_the_calendar_is_read_off_the_event_loop():
    """Reading the calendar the first time imports exchange-calendars (seconds): the loop keeps running."""
    calendar, turns = MarketCalendar(), 0

    async def other_work():
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    other = asyncio.create_task(other_work())
    await MarketHours("09:15-15:30", calendar).ready()
    other.cancel()
    assert "_known" in calendar.__dict__ and turns > 0  # loaded, and other work ran meanwhile


async def test_a_silent_feed_turns_stale_everywhere_and_live_again(bus, own_sim, data_dir):
    settings = stack_settings(bus.nc.connected_url.geturl(), data_dir / "tk", own_sim, feed_stale_seconds=1.5,
                              feed_hours="always")
    gw = stack_settings(bus.nc.connected_url.geturl(), data_dir / "gw", gateway_port=natsd.free_port())
    statuses: asyncio.Queue = asyncio.Queue()

    async def on_status(st, msg):
        await statuses.put(st)

    await bus.subscribe(s.status(USER), m.WorkerStatus, on_status)
    own_ticks: list[m.Tick] = []

    async def on_own_tick(t, msg):
        own_ticks.append(t)

    await bus.subscribe(s.user_ticks(USER, INFY), m.Tick, on_own_tick)  # what the user's read-only key reads
    alerts = await bus.js.subscribe(s.alerts(USER), stream=s.STREAM_ALERTS, deliver_policy="new")
    try:
        async with running(ticker_main, settings), serve(gw) as g, g.client() as client:
            await wait_health(bus, "ticker")
            await put_session(bus, vault_for(settings), USER, own_sim.api_key, login(own_sim, USER, "demo2"))

            async def live(tokens, mode=m.TickMode.QUOTE):
                r = await bus.request(s.cmd(USER, "ticker", "subscribe"), m.Subscribe(tokens=tokens, mode=mode))
                return isinstance(r, m.Ok) and r.data["connected"]

            await eventually(lambda: live([SILENT]), 15, "the ticker to have the session")
            stale = await asyncio.wait_for(statuses.get(), 15)
            assert stale.state == "degraded" and stale.detail.startswith("feed stale")
            alert = msgspec.msgpack.decode((await alerts.next_msg(timeout=15)).data, type=m.Alert)
            assert alert.kind == "feed_stale" and alert.severity == "critical" and alert.user_id == USER
            feed = (await bus.request(s.cmd(USER, "ticker", "status"), m.GetStatus())).data["feed"]
            assert feed["state"] == "stale" and feed["last_tick_age"] >= 1.5  # (rounded to 0.1 s)
            assert feed["token_ages"][SILENT] >= 1.5  # per instrument too
            assert metrics.FEED_STALE.labels(USER)._value.get() == 1.0
            ready = await client.get("/readyz")
            assert ready.status_code == 503 and "feed" in ready.json()["missing"]
            assert ready.json()["stale_feeds"] == 1
            serving = (await client.get("/readyz", params={"feed": "false"})).json()
            assert "feed" not in serving["missing"]  # what k8s routes by: the dashboard stays reachable

            await live([INFY], m.TickMode.FULL)  # ticks again (full: with the exchange's timestamp)
            restored = await asyncio.wait_for(statuses.get(), 15)
            assert restored.state == "ready"
            alert = msgspec.msgpack.decode((await alerts.next_msg(timeout=15)).data, type=m.Alert)
            assert alert.kind == "feed_restored"
            await eventually(lambda: own_ticks, 10, "the user's own tick subject")
            heard = own_ticks[0].exchange_timestamp or own_ticks[0].last_trade_time
            # on the exchange's clock, as the ticks tell it (the sim's market runs 60x: not this machine's)
            assert heard and abs(alert.exchange_ts / 1e9 - heard) < 120, (alert.exchange_ts, heard)
            assert metrics.FEED_STALE.labels(USER)._value.get() == 0.0
            assert "feed" not in (await client.get("/readyz")).json()["missing"]
            await eventually(lambda: own_ticks, 10, "the user's own tick subject")
    finally:
        await alerts.unsubscribe()
        kv = await bus.kv(natsperms.KV_TICKER)  # no later test's ticker restores this user's instruments
        await kv.delete(USER)


def test_the_status_bar_shows_a_stale_feed_in_red():
    from gateway.templating import environment

    status = {"broker": {"state": "live"}, "live": True, "live_tokens": [INFY], "kill_switch": "ACTIVE",
              "workers": {}, "feed": {"state": "stale", "last_tick_age": 42.4}}
    html = environment().get_template("partials/status.html").render(status=status, user_id=USER, csrf="x")
    assert 'class="pill bad" id="feed-pill">feed stale: no ticks for 42 s' in html
    status["feed"] = {"state": "live", "last_tick_age": 0.3}
    assert "feed-pill" not in environment().get_template("partials/status.html").render(status=status, csrf="x")
