"""The strategy worker end to end: commands over NATS, kite_sim ticks in, signals on JetStream."""

import asyncio

import pytest
from nats.js.api import ConsumerConfig, DeliverPolicy

from shared import messages as m
from shared import subjects
from shared.broker_sessions import put_session, vault_for
from strategy_worker.main import amain as strategy_main
from tests.helpers import eventually, running, stack_settings, wait_health
from tests.simkit import login
from ticker_worker.main import amain as ticker_main

pytestmark = pytest.mark.slow(seconds=20)


async def test_commands_validation_and_live_signals(bus, sim, data_dir):
    sim.reset_faults()
    settings = stack_settings(bus.nc.connected_url.geturl(), data_dir, sim, seed_interval="minute", seed_days=1)
    user = "DEMO01"
    signals: asyncio.Queue = asyncio.Queue()

    async def on_signal(sig, msg):
        await signals.put(sig)

    await bus.subscribe(subjects.signals(user), m.AnySignal, on_signal)
    async with running(ticker_main, settings), running(strategy_main, settings):
        await wait_health(bus, "strategy")
        await wait_health(bus, "ticker")
        await put_session(bus, vault_for(settings), user, sim.api_key, login(sim))

        catalog = await bus.request(subjects.cmd(user, "strategy", "catalog"), m.GetCatalog())
        assert {c["name"] for c in catalog.data} >= {"ema_crossover", "vwap_breakout", "mean_reversion", "rsi",
                                                      "iron_condor", "straddle", "strangle", "bull_call_spread",
                                                      "bear_put_spread"}
        bad = await bus.request(subjects.cmd(user, "strategy", "add"),
                                m.AddStrategy(strategy="ema_crossover", params={"fast": 0}))
        assert isinstance(bad, m.Error) and bad.field == "fast" and "allowed 2 to 200" in bad.message
        unknown = await bus.request(subjects.cmd(user, "strategy", "add"),
                                    m.AddStrategy(strategy="ema_crossover", params={"fats": 3}))
        assert isinstance(unknown, m.Error) and unknown.field == "fats"

        add = m.AddStrategy(strategy="ema_crossover", params={"fast": 2, "slow": 4, "lots": 1})
        ok = await bus.request(subjects.cmd(user, "strategy", "add"), add, request_id="add-1")
        assert isinstance(ok, m.Ok), ok
        sid = ok.data["strategy_id"]
        # a retry after a timeout (same request id) answers with the first outcome, not a second strategy
        again = await bus.request(subjects.cmd(user, "strategy", "add"), add, request_id="add-1")
        assert isinstance(again, m.Ok) and again.data["strategy_id"] == sid
        replies = await bus.gather(subjects.cmd(user, "live", "start"), m.StartLive(tokens=[256265]),
                                   expect={"ticker", "strategy"}, timeout=20)
        assert isinstance(replies["strategy"], m.Ok), replies

        async def warm():
            listing = await bus.request(subjects.cmd(user, "strategy", "list"), m.ListStrategies())
            return listing.data[0]["symbols"][0]["warm"] and listing.data[0]["seeding"] is None
        await eventually(warm, timeout=60, what="history seeded in the background")

        sig = await asyncio.wait_for(signals.get(), 90)
        assert sig.strategy_id == sid and sig.user_id == user and sig.intent == "entry"
        assert sig.tradingsymbol.startswith("NIFTY") and sig.tradingsymbol.endswith("FUT")
        assert sig.quantity % 65 == 0 and sig.stop_loss and sig.target
        assert sig.tick_received_at > 0

        listing = await bus.request(subjects.cmd(user, "strategy", "list"), m.ListStrategies())
        assert [r["strategy_id"] for r in listing.data] == [sid] and listing.data[0]["signals"] >= 1
        log = await bus.request(subjects.cmd(user, "strategy", "signals"), m.GetSignals(limit=5))
        assert log.data[-1]["id"] or log.data[0]["id"]

        removed = await bus.request(subjects.cmd(user, "strategy", "remove"), m.RemoveStrategy(strategy_id=sid))
        assert isinstance(removed, m.Ok)
        await bus.gather(subjects.cmd(user, "live", "stop"), m.StopLive(), expect={"ticker", "strategy"})


async def test_outcomes_reach_their_strategy_through_jetstream_and_survive_a_restart(bus, sim, data_dir):
    """The execution worker's StrategyOutcome on kta.u.<user>.outcomes (KTA_OUTCOMES, partitioned) sets
    the strategy's position; a payload naming another user than its subject is dead-lettered; a
    restarted worker resumes the position from its store and the consumer's ack floor."""
    sim.reset_faults()
    settings = stack_settings(bus.nc.connected_url.geturl(), data_dir, sim, seed_days=0)
    user, other = "DEMO01", "DEMO02"
    dlq = await bus.js.subscribe(subjects.dlq("strategy"), config=ConsumerConfig(deliver_policy=DeliverPolicy.NEW))

    def outcome(seq: int, position: int, owner: str = user, kind: str = "external") -> m.StrategyOutcome:
        return m.StrategyOutcome(user_id=owner, strategy_id="mr", kind=kind, seq=seq, order_kind="external",
                                 instrument_token=408065, tradingsymbol="INFY", position=position,
                                 average_price=150_000, reason="manual trade in Kite")

    async def position():
        listing = await bus.request(subjects.cmd(user, "strategy", "list"), m.ListStrategies())
        return listing.data[0]["position"] if listing.data else None

    async with running(strategy_main, settings):
        await wait_health(bus, "strategy")
        ok = await bus.request(subjects.cmd(user, "strategy", "add"),
                               m.AddStrategy(strategy="mean_reversion", tokens=[408065], strategy_id="mr"))
        assert isinstance(ok, m.Ok), ok
        await bus.js_publish(subjects.outcomes(user), outcome(1, 25))
        await eventually(lambda: position(), what="the first outcome")
        assert await position() == {"408065": 25}
        await bus.js_publish(subjects.outcomes(user), outcome(2, 999, owner=other))  # on DEMO01's subject
        letter = await dlq.next_msg(timeout=10)
        assert letter.headers["Kta-Subject"].startswith("kta.u.DEMO01.outcomes")
        assert "DEMO02" in letter.headers["Kta-Error"]
        assert await position() == {"408065": 25}
    await bus.js_publish(subjects.outcomes(user), outcome(3, 40))  # while the worker is down
    async with running(strategy_main, settings):
        await wait_health(bus, "strategy")

        async def caught_up():
            return await position() == {"408065": 40}
        await eventually(caught_up, what="the outcome published while the worker was down")
    await dlq.unsubscribe()


async def test_an_option_strategy_has_the_ticker_follow_the_strikes_around_the_spot(bus, sim, data_dir):
    """Asked at Start nothing but the index (no spot yet), the ticker is asked for the chain's strikes
    around the spot as soon as the spot is known — without anyone pressing Start again."""
    sim.reset_faults()
    settings = stack_settings(bus.nc.connected_url.geturl(), data_dir, sim, seed_days=0)
    user = "DEMO01"
    async with running(ticker_main, settings), running(strategy_main, settings):
        await wait_health(bus, "strategy")
        await wait_health(bus, "ticker")
        await put_session(bus, vault_for(settings), user, sim.api_key, login(sim))
        await bus.request(subjects.cmd(user, "strategy", "add"),
                          m.AddStrategy(strategy="iron_condor", tokens=[256265], strategy_id="ic"))
        replies = await bus.gather(subjects.cmd(user, "live", "start"), m.StartLive(tokens=[256265]),
                                   expect={"ticker", "strategy"}, timeout=20)
        assert all(isinstance(r, m.Ok) for r in replies.values()), replies

        async def wanted() -> int:
            status = await bus.request(subjects.cmd(user, "ticker", "status"), m.GetStatus())
            return len(status.data["tokens"])
        await eventually(lambda: _more_than(wanted(), 40), timeout=30, what="the strikes around the spot")
        await bus.gather(subjects.cmd(user, "live", "stop"), m.StopLive(), expect={"ticker", "strategy"})
        await (await bus.kv("kta_ticker")).delete(user)


async def _more_than(value, n: int) -> bool:
    return (await value) > n
