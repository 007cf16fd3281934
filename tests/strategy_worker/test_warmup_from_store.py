"""The strategy warm-up reads history from the candle store: with the store already holding a symbol's history
(as ``kta candles refresh`` leaves it), the strategy worker asks Kite only for what the store lacks (today's tail),
never for the range it warms on — and its first live signal is the one a warm-up on Kite's history gives."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

from shared import messages as m
from shared import subjects
from shared.broker_sessions import put_session, vault_for
from shared.candles.fetch import refresh
from shared.candles.store import CandleStore
from shared.ist import IST
from shared.kite.client import KiteClient
from strategy_worker.main import amain as strategy_main
from strategy_worker.runner import StrategyRunner
from strategy_worker.strategies import registry
from strategy_worker.strategies.context import StrategyContext
from tests.helpers import eventually, running, stack_settings, wait_health
from tests.simkit import login
from ticker_worker.main import amain as ticker_main

pytestmark = pytest.mark.slow(seconds=20)

USER = "DEMO01"
PARAMS = {"fast": 5, "slow": 50}  # a slow EMA with a long memory: its value shows what it was warmed on


def history_calls(sim) -> list[dict]:
    r = sim.get("/sim/history_calls", timeout=10)
    r.raise_for_status()
    return r.json()["calls"]


def naive(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, IST).replace(tzinfo=None)


async def test_warm_up_comes_from_the_store_and_signals_as_a_warm_up_from_history(bus, sim, data_dir):
    sim.reset_faults()
    settings = stack_settings(bus.nc.connected_url.geturl(), data_dir, sim, seed_interval="minute", seed_days=1,
                              max_bars=5000)
    # the range the seeder warms on (strategy_worker/seeding.py): seed_days + 3 days back to the end of today
    end = datetime.now(IST).replace(hour=23, minute=59, second=59, microsecond=0)
    first, last = int((end - timedelta(days=settings.seed_days + 3)).timestamp()), int(end.timestamp())
    store = CandleStore(settings.data_path / "candles")
    async with KiteClient(sim.api_key, login(sim), root=sim.root) as kite:
        instruments = await kite.instruments()
        token = next(i.instrument_token for i in instruments if i.exchange == "NSE" and i.tradingsymbol == "INFY")
        await refresh(kite, store, [token], "minute", first, last)  # the store filled beforehand
    held_to = store.covered(token, "minute")[-1][1]
    assert store.read(token, "minute", first, held_to).ts.size > 300  # days of history to warm on
    asked_before = len(history_calls(sim))

    signals: asyncio.Queue = asyncio.Queue()
    live: dict[int, m.Bar] = {}
    bar_seen = asyncio.Event()

    async def on_signal(sig, msg):
        await signals.put(sig)

    async def on_bar(bar, msg):
        live[bar.start] = bar
        bar_seen.set()

    await bus.subscribe(subjects.signals(USER), m.AnySignal, on_signal)
    await bus.subscribe(subjects.bars("minute", token), m.Bar, on_bar)
    async with running(ticker_main, settings), running(strategy_main, settings):
        await wait_health(bus, "strategy")
        await wait_health(bus, "ticker")
        await put_session(bus, vault_for(settings), USER, sim.api_key, login(sim))
        started = await bus.gather(subjects.cmd(USER, "live", "start"), m.StartLive(tokens=[token]),
                                   expect={"ticker", "strategy"}, timeout=20)
        assert isinstance(started["strategy"], m.Ok), started
        await asyncio.wait_for(bar_seen.wait(), 30)  # live bars are forming: the history goes in behind them
        ok = await bus.request(subjects.cmd(USER, "strategy", "add"),
                               m.AddStrategy(strategy="ema_crossover", params=PARAMS, tokens=[token]))
        assert isinstance(ok, m.Ok), ok

        async def warm():
            listing = await bus.request(subjects.cmd(USER, "strategy", "list"), m.ListStrategies())
            return listing.data[0]["symbols"][0]["warm"] and listing.data[0]["seeding"] is None
        await eventually(warm, timeout=60, what="the symbol warmed from the store")
        # A cross at once instead of waiting minutes for the random walk's: the price pinned 5% under the
        # last close, then 5% over it. Whichever way EMA5 stood against EMA50, one of the two moves crosses
        # it within a few minute bars (EMA5 follows a step in ~3 bars, EMA50 barely moves), so a signal comes.
        spot = live[max(live)].close
        for price in (round(spot * 0.95, 1), round(spot * 1.05, 1)):
            sim.admin("price", {"underlying": "INFY", "price": price})
            if signals.empty():
                await eventually(lambda p=price: sum(abs(b.high - p) < 0.01 and abs(b.low - p) < 0.01
                                                     for b in live.values()) >= 3, 30, f"three minute bars at {price}")
        sig = await asyncio.wait_for(signals.get(), 30)
        sim.admin("price", {"underlying": "INFY", "price": None})
        await bus.gather(subjects.cmd(USER, "live", "stop"), m.StopLive(), expect={"ticker", "strategy"})

    # Kite was asked only for what the store did not hold (today's tail), never for the range warmed on
    asked = history_calls(sim)[asked_before:]
    assert len(asked) <= 1 and all(c["token"] == token and c["from"] > held_to for c in asked), (held_to, asked)

    # the same warm-up from Kite's history: the history bars before the first live bar, then the live bars
    # (a live bar replaces history for its minute, as the worker's BarSeries does)
    async with KiteClient(sim.api_key, login(sim), root=sim.root) as kite:
        rows = await kite.historical_data(token, naive(first), naive(last), "minute")
    starts = sorted(live)
    history = [m.Bar(token, "minute", int(c.date.timestamp()), c.open, c.high, c.low, c.close, c.volume, c.oi or 0)
               for c in rows if int(c.date.timestamp()) < starts[0]]
    series = history + [live[s] for s in starts]
    ctx = StrategyContext(instruments, {})
    cls, params = registry.get("ema_crossover"), registry.validate_params("ema_crossover", PARAMS)
    expected = set()
    for k in range(len(history), len(series)):  # the signal of every live bar after a warm-up on what preceded it
        runner = StrategyRunner(cls, "ref", USER, params, [token], ctx)
        for bar in series[:k]:
            runner.warm_up(bar)
        expected |= {(s.intent, s.transaction_type, s.reason) for s in runner.on_bar(series[k])}
    assert expected, "no live bar crossed"
    assert (sig.intent, sig.transaction_type, sig.reason) in expected, (sig.reason, sorted(expected))
