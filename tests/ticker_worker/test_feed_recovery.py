"""The feed comes back by itself: a SIGKILLed ticker worker process is replaced and the new one
subscribes every live user's instruments again (no Start pressed, no strategy worker resending);
after a Kite token expires and the trader logs in again, ticks resume on the new token."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import msgspec
import pytest

from shared import messages as m
from shared import natsperms
from shared import partition, subjects
from shared.config import to_env
from shared.broker_sessions import put_session, vault_for
from tests import simfork
from tests.helpers import eventually, running, stack_settings, wait_health
from tests.simkit import login, start_sim
from ticker_worker import wanted
from ticker_worker.main import amain as ticker_main

ROOT = Path(__file__).resolve().parents[2]
INFY, NIFTY = 408065, 256265


@pytest.fixture(scope="module")
def own_sim(tmp_path_factory):
    """A sim of this module's own: expiring every session must not touch other tests' tokens."""
    s = start_sim(tmp_path_factory.mktemp("feed-sim"), speed=60.0)
    yield s
    s.stop()


def ticker_process(settings, log: Path) -> simfork.Forked:
    """``python -m kta worker ticker``, forked from the tests' preloaded server (tests/simfork.py)."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("KTA_")}, **to_env(settings)}
    with open(log, "ab") as out:
        return simfork.spawn(["worker", "ticker"], cwd=ROOT, env=env, log=out.fileno(), program="kta")


async def _ticks(bus, token: int) -> list[m.Tick]:
    got: list[m.Tick] = []

    async def on_tick(t, msg):
        got.append(t)

    await bus.subscribe(subjects.ticks(token), m.Tick, on_tick)
    return got


async def _start_live(bus, user: str, tokens: list[int]) -> None:
    async def started():
        replies = await bus.gather(subjects.cmd(user, "live", "start"),
                                   m.StartLive(tokens=tokens, mode=m.TickMode.QUOTE), expect={"ticker"})
        return isinstance(replies.get("ticker"), m.Ok)

    await eventually(started, 15, "the ticker to accept StartLive")  # its session watch may lag the put


async def test_a_sigkilled_ticker_worker_is_replaced_and_ticks_resume_without_user_action(bus, own_sim, data_dir):
    settings = stack_settings(bus.nc.connected_url.geturl(), data_dir, own_sim)
    ticks = await _ticks(bus, INFY)
    first = ticker_process(settings, data_dir / "ticker.log")
    second = None
    try:
        await wait_health(bus, "ticker")
        await put_session(bus, vault_for(settings), "DEMO01", own_sim.api_key, login(own_sim))
        await _start_live(bus, "DEMO01", [INFY])
        # a strategy's own subscription (an option strategy's chain): in the feed, not among the trader's picks
        added = await bus.request(subjects.cmd("DEMO01", "ticker", "subscribe"), m.Subscribe(tokens=[NIFTY]))
        assert isinstance(added, m.Ok)
        await eventually(lambda: len(ticks) >= 2, 20, "ticks before the crash")

        first.send_signal(signal.SIGKILL)
        first.wait(10)
        second = ticker_process(settings, data_dir / "ticker.log")  # what the supervisor does
        await wait_health(bus, "ticker", 30)
        ticks.clear()
        await eventually(lambda: len(ticks) >= 2, 30, "ticks from the restarted worker, nobody pressing Start")
        status = await bus.request(subjects.cmd("DEMO01", "ticker", "status"), m.GetStatus())
        assert isinstance(status, m.Ok) and status.data["connected"] is True
        assert {int(t) for t in status.data["tokens"]} == {INFY, NIFTY}
        # the trader's own symbols survive the restart: the desk says "live on 1 symbol", not every token the
        # feed carries (it showed 69 raw tokens after `kta up` was restarted with an option strategy running)
        assert status.data["picked"] == [INFY]
    finally:
        for p in (first, second):
            if p is not None and p.poll() is None:
                p.terminate()
                p.wait(15)
        await _forget(bus, "DEMO01")


async def _forget(bus, user: str) -> None:
    """No later test's ticker worker restores this test's instruments."""
    await (await bus.kv(natsperms.KV_TICKER)).delete(user)


async def test_after_token_expiry_a_fresh_login_resumes_the_feed_by_itself(bus, own_sim, data_dir):
    settings = stack_settings(bus.nc.connected_url.geturl(), data_dir, own_sim)
    ticks = await _ticks(bus, NIFTY)
    stored = partition.feed_subject(subjects.broker_events("DEMO02"), partition.of("DEMO02"))
    events = await bus.js.subscribe(stored, stream=subjects.STREAM_BROKER, deliver_policy="new")
    async with running(ticker_main, settings):
        await wait_health(bus, "ticker")
        await put_session(bus, vault_for(settings), "DEMO02", own_sim.api_key, login(own_sim, "DEMO02", "demo2"))
        await _start_live(bus, "DEMO02", [NIFTY])
        await eventually(lambda: len(ticks) >= 2, 20, "ticks before expiry")

        own_sim.admin("expire_sessions")
        own_sim.admin("drop_ws")  # the socket goes; reconnecting with the dead token is refused
        kinds: list[str] = []
        while "token_expired" not in kinds:
            kinds.append(msgspec.msgpack.decode((await events.next_msg(timeout=20)).data, type=m.BrokerEvent).kind)

        await put_session(bus, vault_for(settings), "DEMO02", own_sim.api_key, login(own_sim, "DEMO02", "demo2"))
        ticks.clear()
        await eventually(lambda: len(ticks) >= 2, 30, "ticks on the new token, nobody pressing Start")
    await events.unsubscribe()
    await _forget(bus, "DEMO02")


def test_an_entry_saved_before_the_picks_were_kept_still_restores():
    """A ticker upgraded under a live user reads the KV entry its predecessor wrote (token → mode only)."""
    old = msgspec.msgpack.encode({INFY: "quote", NIFTY: "full"})
    assert wanted.decode(old) == wanted.Saved(wanted={INFY: "quote", NIFTY: "full"}, picked=[])
    new = msgspec.msgpack.encode(wanted.Saved(wanted={INFY: "quote"}, picked=[INFY]))
    assert wanted.decode(new) == wanted.Saved(wanted={INFY: "quote"}, picked=[INFY])
