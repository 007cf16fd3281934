"""One user cannot stall another, and trading comes back by itself: the strategy worker answers every
user while one user's history is still being fetched (Kite allows 3 historical calls a second, the
fetching goes on in the background with progress), and a user whose Kite session expired trades
again as soon as they log in to Kite again — no Start needed (and after a kill-switch reset)."""

import time

import pytest

from shared import messages as m
from shared import subjects
from shared.broker_sessions import expire_session, put_session, vault_for
from strategy_worker.main import amain as strategy_main
from tests.helpers import eventually, running, stack_settings, wait_health
from tests.shared.test_options import sim_instruments
from tests.simkit import login

pytestmark = pytest.mark.slow(seconds=15)

USER, OTHER = "DEMO01", "DEMO02"


async def listing(bus, user: str) -> list[dict]:
    reply = await bus.request(subjects.cmd(user, "strategy", "list"), m.ListStrategies(), timeout=5)
    assert isinstance(reply, m.Ok), reply
    return reply.data


async def test_a_users_long_seeding_never_holds_up_another_users_commands(bus, sim, data_dir):
    sim.reset_faults()
    settings = stack_settings(bus.nc.connected_url.geturl(), data_dir, sim, seed_days=2)
    await put_session(bus, vault_for(settings), USER, sim.api_key, login(sim))
    async with running(strategy_main, settings):
        await wait_health(bus, "strategy")
        tokens = [i.instrument_token for i in sim_instruments() if i.segment == "NSE" and i.instrument_type == "EQ"][:40]
        assert len(tokens) == 40
        started = await bus.request(subjects.cmd(USER, "live", "start"), m.StartLive(tokens=tokens), timeout=10)
        assert isinstance(started, m.Ok), started
        added = await bus.request(subjects.cmd(USER, "strategy", "add"),  # no symbols: the 40 live ones
                                  m.AddStrategy(strategy="rsi", strategy_id="wide"), timeout=5)
        assert isinstance(added, m.Ok) and len(added.data["tokens"]) == 40
        seeding = (await listing(bus, USER))[0]["seeding"]
        assert seeding and seeding["done"] < seeding["total"] == 40  # 40 histories at 3 a second: ~14 s
        other = await bus.request(subjects.cmd(OTHER, "strategy", "add"),
                                  m.AddStrategy(strategy="ema_crossover", strategy_id="wide"), timeout=5)
        assert isinstance(other, m.Ok)  # answered at once, and the same id is DEMO02's own
        assert (await listing(bus, OTHER))[0]["strategy"] == "ema_crossover"
        still = (await listing(bus, USER))[0]["seeding"]
        assert still is not None and still["done"] < 40  # DEMO01's history was still coming in
        await eventually(lambda: _seeded(bus), timeout=60, what="DEMO01's history, in the background")
        await bus.request(subjects.cmd(USER, "live", "stop"), m.StopLive())


async def _seeded(bus) -> bool:
    row = (await listing(bus, USER))[0]
    return row["seeding"] is None and all(s["warm"] for s in row["symbols"])


async def test_trading_resumes_by_itself_after_a_kite_re_login(bus, sim, data_dir):
    sim.reset_faults()
    settings = stack_settings(bus.nc.connected_url.geturl(), data_dir, sim, seed_days=0)
    await put_session(bus, vault_for(settings), USER, sim.api_key, login(sim))
    async with running(strategy_main, settings):
        await wait_health(bus, "strategy")
        await bus.request(subjects.cmd(USER, "strategy", "add"),
                          m.AddStrategy(strategy="rsi", tokens=[408065], strategy_id="r"))
        assert isinstance(await bus.request(subjects.cmd(USER, "live", "start"), m.StartLive(tokens=[408065])), m.Ok)
        assert (await listing(bus, USER))[0]["state"] == "active"

        await expire_session(bus, USER, "token expired")  # what a 403 from Kite does

        async def state(expected: str) -> bool:
            return (await listing(bus, USER))[0]["state"] == expected
        await eventually(lambda: state("paused"), what="paused on the expired session")
        assert "log in to Kite again" in (await listing(bus, USER))[0]["error"]

        await put_session(bus, vault_for(settings), USER, sim.api_key, login(sim))  # the trader logs in again
        await eventually(lambda: state("active"), what="trading again without pressing Start")
        assert (await listing(bus, USER))[0]["error"] == ""

        def risk(state_: m.KillSwitchState) -> m.RiskState:
            return m.RiskState(user_id=USER, ts=time.time_ns(), state=state_, reason="daily loss limit")
        await bus.publish(subjects.risk(USER), risk(m.KillSwitchState.HALTED))
        await eventually(lambda: state("paused"), what="paused by the kill switch")
        await bus.publish(subjects.risk(USER), risk(m.KillSwitchState.ACTIVE))  # reset by the trader
        await eventually(lambda: state("active"), what="trading again after the reset")
        await bus.request(subjects.cmd(USER, "live", "stop"), m.StopLive())
