"""The engine's history and warm-up on a real nats-server (and kite_sim where a broker answers): going live
seeds history in the background so indicators are warm, strategies added or retuned mid-session start warm,
a symbol waits for its history while the others trade, a feed gap is refilled per symbol, and option ticks
reach the chain's OI tracker and an option strategy once the spot is known."""


import pytest

from shared import messages as m
from shared.messages import Bar, Tick
from strategy_worker.commands import StrategyCommands
from strategy_worker.engine import StrategyEngine
from strategy_worker.seeding import Seeder
from tests.helpers import stack_settings
from tests.strategy_worker.engine_kit import (  # noqa: F401 - autouse
    ENGINES,
    USER,
    Worker,
    bars_of,
    close_engines,
    with_test_strategies,
)
from tests.strategy_worker.kit import INFY, OPEN, TCS


async def test_start_live_seeds_history_in_the_background_so_indicators_are_warm(bus, sim, data_dir):
    from datetime import datetime, timedelta

    import numpy as np
    import talib

    from shared.broker_sessions import put_session, vault_for
    from shared.ist import IST
    from shared.kite.client import KiteClient
    from tests.simkit import login

    sim.reset_faults()
    e = StrategyEngine(bus, stack_settings(bus.nc.connected_url.geturl(), data_dir, sim))  # 5 days of 5minute
    ENGINES.append(e)
    seeder = Seeder(e)
    c = StrategyCommands(e, seeder)
    token = login(sim)
    await put_session(bus, vault_for(e.settings), USER, sim.api_key, token)
    c.add(USER, m.AddStrategy(strategy="ema_crossover", params={"fast": 20, "slow": 200}, tokens=[INFY, TCS],
                              strategy_id="ema"))
    reply = await c.start_live(USER, [INFY], "full")
    assert isinstance(reply, m.Ok), reply
    assert reply.data["seeding"] == {"done": 0, "total": 2}  # answered before any history came
    await seeder.idle()
    assert e.users[USER].seeding is None and e.get(USER, "ema").warm == {INFY, TCS}
    end = datetime.now(IST).replace(hour=23, minute=59, second=59, microsecond=0)
    async with KiteClient(sim.api_key, token, root=sim.root) as kite:
        for t in (INFY, TCS):
            series = e.series_for(t)
            assert 200 < len(series.bars) <= 500
            inst = e.get(USER, "ema").runner.instances[t]
            candles = await kite.historical_data(t, end - timedelta(days=8), end, "5minute")
            closes = np.array([c.close for c in candles if int(c.date.timestamp()) <= series.bars[-1].start][-500:])
            assert inst.fast.value == pytest.approx(talib.EMA(closes, 20)[-1], rel=1e-9)
            assert inst.slow.value == pytest.approx(talib.EMA(closes, 200)[-1], rel=1e-9)
    assert set(e.ctx.bands) == {INFY, TCS} and all(lo < hi for lo, hi in e.ctx.bands.values())  # circuits
    assert e.signals_published == 0  # seeding never trades


async def test_strategies_added_or_retuned_mid_session_start_warm(bus, data_dir):
    import numpy as np
    import talib

    w = Worker(bus, data_dir)
    rng = np.random.default_rng(4)
    closes = 100 + np.cumsum(rng.normal(0, 0.5, 300))
    w.e.series_for(INFY).seed([Bar(INFY, "5minute", OPEN - 300 * (300 - i), c, c + 1, c - 1, c, 100)
                               for i, c in enumerate(closes)])
    w.add(USER, "ema_crossover", "ema", fast=10, slow=50)
    s = w.instance(USER, "ema")
    assert s.fast.value == pytest.approx(talib.EMA(closes, 10)[-1], rel=1e-9)
    assert s.slow.value == pytest.approx(talib.EMA(closes, 50)[-1], rel=1e-9)
    w.e.series_ready(INFY)  # readied again: nothing is replayed twice
    assert s.fast.value == pytest.approx(talib.EMA(closes, 10)[-1], rel=1e-9)
    assert isinstance(w.c.update_params(USER, m.UpdateParams(strategy_id="ema", params={"fast": 20})), m.Ok)
    s = w.instance(USER, "ema")
    assert s.fast.value == pytest.approx(talib.EMA(closes, 20)[-1], rel=1e-9)
    assert w.e.signals_published == 0


async def test_a_symbol_waits_for_its_history_while_the_others_trade(bus, data_dir):
    w = Worker(bus, data_dir)
    w.c.add(USER, m.AddStrategy(strategy="test_above_level", params={"level": 100}, tokens=[INFY, TCS],
                                strategy_id="two"))
    w.e.users[USER].live = True
    w.e.series_ready(INFY)  # TCS's history has not come yet
    await bars_of(w.e, [101.0, 102.0], token=TCS)
    await bars_of(w.e, [101.0, 102.0], token=INFY)
    assert [s["tradingsymbol"] for s in w.e.users[USER].signal_log] == ["INFY"]
    assert "bars" not in w.instance(USER, "two", TCS).state
    w.e.series_ready(TCS)  # its live bars so far are run as warm-up: no late signal from old bars
    assert w.instance(USER, "two", TCS).state["bars"] == 2 and w.e.signals_published == 1


async def test_option_ticks_feed_the_chains_oi_tracker(bus, data_dir):
    from tests.shared.test_options import sim_instruments

    e = Worker(bus, data_dir).e
    e.ctx.set_instruments(sim_instruments())
    opts = [i for i in e.ctx.instruments if i.name == "NIFTY" and i.instrument_type in ("CE", "PE")]
    expiry = min(i.expiry for i in opts)
    chain = [i for i in opts if i.expiry == expiry][:6]
    for n, inst in enumerate(chain):
        await e.on_tick(Tick(inst.instrument_token, "full", True, 100.0, oi=1000 * (n + 1),
                             exchange_timestamp=OPEN + n))
    await e.on_tick(Tick(chain[0].instrument_token, "full", True, 100.0, oi=7000, exchange_timestamp=OPEN + 9))
    tracker = e.ctx.oi[("NIFTY", expiry)]
    ce = sum((7000 if i is chain[0] else 1000 * (n + 1)) for n, i in enumerate(chain) if i.instrument_type == "CE")
    pe = sum(1000 * (n + 1) for n, i in enumerate(chain) if i.instrument_type == "PE")
    assert tracker.pcr == pytest.approx(pe / ce)
    k0 = chain[0].strike
    assert tracker.change(k0)[0 if chain[0].instrument_type == "CE" else 1] == 6000


async def test_a_feed_gap_is_refilled_from_history_per_symbol(bus, sim, data_dir):
    from datetime import datetime, timedelta

    import numpy as np
    import talib

    from shared.broker_sessions import put_session
    from shared.ist import IST
    from shared.kite.client import KiteClient
    from tests.simkit import login

    sim.reset_faults()
    w = Worker(bus, data_dir, seed_days=2, kite_root=sim.root, kite_login_url=sim.login_url)
    token = login(sim)
    await put_session(bus, w.e.vault, USER, sim.api_key, token)
    end = datetime.now(IST).replace(hour=23, minute=59, second=59, microsecond=0)
    async with KiteClient(sim.api_key, token, root=sim.root) as kite:
        candles = [c for c in await kite.historical_data(INFY, end - timedelta(days=5), end, "5minute")][-300:-1]
    history = [Bar(INFY, "5minute", int(c.date.timestamp()), c.open, c.high, c.low, c.close, c.volume)
               for c in candles]
    seen = history[:-12]  # the feed dropped for the last hour: those bars never reached the worker
    w.e.series_for(INFY).seed(seen)
    w.add(USER, "ema_crossover", "ema", tokens=(INFY, TCS), fast=10, slow=50)
    assert w.instance(USER, "ema").last_bar == seen[-1].start
    w.c.seeder.refill(USER, [INFY], history[-12].start)  # reconnected: fetch what the gap left out
    assert w.e.get(USER, "ema").warm == {TCS}  # INFY's instance waits for its missing bars; TCS trades on
    await w.c.seeder.idle()
    # the sim's clock runs 60x (a bar every 5 s): the refill may have found a bar that closed after the read above
    async with KiteClient(sim.api_key, token, root=sim.root) as kite:
        later = [Bar(INFY, "5minute", int(c.date.timestamp()), c.open, c.high, c.low, c.close, c.volume)
                 for c in (await kite.historical_data(INFY, end - timedelta(days=5), end, "5minute"))[:-1]]
    s = w.instance(USER, "ema")
    assert s.last_bar >= history[-1].start and INFY in w.e.get(USER, "ema").warm
    upto = [b for b in later if b.start <= s.last_bar][-300:]
    assert upto[-1].start == s.last_bar
    assert s.fast.value == pytest.approx(talib.EMA(np.array([b.close for b in upto]), 10)[-1], rel=1e-9)
    starts = [b.start for b in w.e.series_for(INFY).bars]
    gap = starts[starts.index(history[-12].start):]  # the gap's bars, in order, and nothing invented after them
    assert gap == [b.start for b in upto if b.start >= history[-12].start]
    assert w.e.signals_published == 0  # the refilled bars are history: never traded


async def test_an_option_strategy_gets_the_ticks_of_the_strikes_around_the_spot_once_it_is_known(bus, data_dir):
    from tests.shared.test_options import sim_instruments

    w = Worker(bus, data_dir)
    w.e.ctx.set_instruments(sim_instruments())
    w.add(USER, "iron_condor", "ic", tokens=(256265,))
    first = await w.c.subscribe_needed(USER)
    assert first == {256265}  # no spot yet: no strikes to follow
    assert await w.c.subscribe_needed(USER, only_new=True) == first
    await w.e.on_tick(Tick(256265, "full", True, 26_000.0, exchange_timestamp=OPEN + 5))
    later = await w.c.subscribe_needed(USER, only_new=True)
    chain = w.instance(USER, "ic", 256265).chain()
    near = {s.ce.instrument_token for s in chain.strikes if abs(s.strike - 26_000) <= 300}
    assert near <= later and len(later) > 40 and set(w.e._tick_subs) >= later
