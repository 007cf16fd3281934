"""The engine on a real nats-server and a tmp SQLite store: completed bars on kta.bars.<interval>.
<token>, a strategy that raises is disabled and reported while the others go on, a restarted
worker resumes holding its position instead of entering again, per-user signal logs, bounded
series."""

import asyncio
from typing import Annotated

import msgspec
import pytest
from msgspec import Meta

from shared import messages as m
from shared import subjects
from shared.messages import Bar, Tick, TransactionType
from strategy_worker.bars import BarSeries
from strategy_worker.engine import StrategyEngine
from strategy_worker.strategies import registry
from strategy_worker.strategies.base import BaseStrategy
from tests.helpers import eventually, stack_settings
from tests.strategy_worker.kit import INFY, INSTRUMENTS, OPEN


class AboveLevel(BaseStrategy):
    """Test strategy: long while flat and a bar closes above ``level`` (a level, not an event:
    a fresh instance would enter again on the next such bar)."""

    name = "test_above_level"
    description = "test"

    class Params(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
        level: Annotated[float, Meta(ge=0, le=1e6, description="Entry level")] = 100.0

    def on_bar(self, bar: Bar) -> list:
        self.state["bars"] = self.state.get("bars", 0) + 1
        if not self.held(bar.instrument_token) and bar.close > self.params.level:
            sig = self.entry(bar.instrument_token, TransactionType.BUY, 0.7, "above level", 0.01, price=bar.close)
            return [sig] if sig else []
        return []


class Raiser(BaseStrategy):
    """Test strategy whose second bar hits a bug."""

    name = "test_raiser"
    description = "test"

    class Params(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
        pass

    def on_bar(self, bar: Bar) -> list:
        self.state["bars"] = self.state.get("bars", 0) + 1
        if self.state["bars"] >= 2:
            raise ZeroDivisionError("division by zero in on_bar")
        return []


@pytest.fixture(autouse=True)
def test_strategies():
    registry.names()  # load the built-ins first
    for cls in (AboveLevel, Raiser):
        registry.register(cls)
    yield
    for cls in (AboveLevel, Raiser):
        registry._REGISTRY.pop(cls.name, None)


def engine_for(bus, data_dir, **overrides) -> StrategyEngine:
    e = StrategyEngine(bus, stack_settings(bus.nc.connected_url.geturl(), data_dir, **overrides))
    e._set_instruments(list(INSTRUMENTS))
    return e


def tick(price: float, second: int, volume: int = 0) -> Tick:
    ts = OPEN + second
    return Tick(INFY, "full", True, price, volume_traded=volume, exchange_timestamp=ts, received_at=ts * 10**9)


async def bars_of(engine: StrategyEngine, closes: list[float], first_bar: int = 0) -> None:
    """One tick per 5-minute bar at its close price, then a tick into the next bar to complete it."""
    for i, c in enumerate(closes):
        await engine.on_tick(tick(c, 300 * (first_bar + i) + 10, volume=1000 * (first_bar + i + 1)))
    await engine.on_tick(tick(closes[-1], 300 * (first_bar + len(closes)) + 10))


async def test_completed_bars_are_published_on_the_bars_subject(bus, data_dir):
    e = engine_for(bus, data_dir)
    got: asyncio.Queue = asyncio.Queue()

    async def on_bar(bar, msg):
        await got.put((msg.subject, bar))

    await bus.subscribe(subjects.bars("5minute", INFY), Bar, on_bar)
    for second, price in ((5, 100.0), (100, 103.0), (200, 99.0), (299, 101.0)):
        await e.on_tick(tick(price, second, volume=10 * second))
    assert got.empty()  # the bar is still open
    await e.on_tick(tick(102.0, 301, volume=4000))
    subject, bar = await asyncio.wait_for(got.get(), 5)
    assert subject == "kta.bars.5minute.408065"
    assert (bar.start, bar.open, bar.high, bar.low, bar.close) == (OPEN, 100.0, 103.0, 99.0, 101.0)
    assert bar.volume == 2990 - 50  # cumulative volume deltas within the bar


async def test_a_strategy_that_raises_is_disabled_and_reported_others_go_on(bus, data_dir):
    e = engine_for(bus, data_dir)
    user = "DEMO01"
    statuses: asyncio.Queue = asyncio.Queue()

    async def on_status(st, msg):
        await statuses.put(st)

    await bus.subscribe(subjects.status(user), m.WorkerStatus, on_status)
    assert isinstance(e.add(user, m.AddStrategy(strategy="test_raiser", tokens=[INFY], strategy_id="bad")), m.Ok)
    assert isinstance(e.add(user, m.AddStrategy(strategy="test_above_level", params={"level": 1e5},
                                                tokens=[INFY], strategy_id="good")), m.Ok)
    e.users[user].live = True
    await bars_of(e, [100.0, 101.0, 102.0, 103.0])
    bad, good = e.running["bad"], e.running["good"]
    assert bad.status == "disabled" and bad.error == "ZeroDivisionError: division by zero in on_bar"
    assert bad.strategy.state["bars"] == 2  # never called again once disabled
    assert good.status == "active" and good.strategy.state["bars"] == 4
    st = await asyncio.wait_for(statuses.get(), 5)
    assert st.state == "degraded" and st.instance == "bad" and "disabled" in st.detail and "ZeroDivision" in st.detail
    listing = {r["strategy_id"]: r for r in e.listing(user)}
    assert listing["bad"]["state"] == "disabled" and "ZeroDivisionError" in listing["bad"]["error"]
    # the disabled state is persisted: a restarted worker does not run it again
    again = engine_for(bus, data_dir)
    again.restore()
    assert again.running["bad"].status == "disabled" and again.running["good"].status == "active"


async def test_a_restarted_worker_resumes_its_position_without_entering_again(bus, data_dir, tmp_path):
    user = "DEMO01"
    signals: list = []

    async def on_signal(sig, msg):
        signals.append(sig)

    await bus.subscribe(subjects.signals(user), m.AnySignal, on_signal)
    first = engine_for(bus, data_dir)
    first.add(user, m.AddStrategy(strategy="test_above_level", params={"level": 100}, tokens=[INFY], strategy_id="lvl"))
    first.users[user].live = True
    await bars_of(first, [99.0, 101.0, 102.0])
    await eventually(lambda: len(signals) == 1)
    assert signals[0].intent == "entry" and signals[0].quantity == 1 and first.running["lvl"].strategy.held(INFY) == 1

    restarted = engine_for(bus, data_dir)  # same SQLite store
    restarted.restore()
    restarted.users[user].live = True
    assert restarted.running["lvl"].strategy.held(INFY) == 1
    before = restarted.running["lvl"].strategy.state["bars"]
    await bars_of(restarted, [103.0, 104.0], first_bar=10)
    assert restarted.running["lvl"].strategy.state["bars"] == before + 2  # it ran, holding
    assert restarted.signals_published == 0

    fresh = engine_for(bus, tmp_path / "elsewhere")  # the control: without the snapshot it enters again
    (tmp_path / "elsewhere").mkdir(exist_ok=True)
    fresh.add(user, m.AddStrategy(strategy="test_above_level", params={"level": 100}, tokens=[INFY], strategy_id="lvl2"))
    fresh.users[user].live = True
    await bars_of(fresh, [103.0, 104.0], first_bar=10)
    assert fresh.signals_published == 1


async def test_signal_logs_are_per_user_and_newest_first(bus, data_dir):
    e = engine_for(bus, data_dir)
    for user, level in (("ALICE1", 100.0), ("BOB001", 1e5)):
        e.add(user, m.AddStrategy(strategy="test_above_level", params={"level": level}, tokens=[INFY],
                                  strategy_id=f"s-{user}"))
        e.users[user].live = True
    await bars_of(e, [101.0, 102.0])
    assert [s["strategy_id"] for s in e.users["ALICE1"].signal_log] == ["s-ALICE1"]
    assert list(e.users["BOB001"].signal_log) == []
    e.stop_live("ALICE1")
    await bars_of(e, [50.0, 150.0], first_bar=5)  # a user who stopped gets nothing
    assert len(e.users["ALICE1"].signal_log) == 1


async def test_bad_params_and_unknown_strategies_are_refused_naming_the_field(bus, data_dir):
    e = engine_for(bus, data_dir)
    bad = e.add("DEMO01", m.AddStrategy(strategy="rsi", params={"period": 1000}))
    assert isinstance(bad, m.Error) and bad.field == "period" and "allowed 2 to 100" in bad.message
    unknown = e.add("DEMO01", m.AddStrategy(strategy="astrology"))
    assert isinstance(unknown, m.Error) and unknown.field == "strategy" and "ema_crossover" in unknown.message
    ok = e.add("DEMO01", m.AddStrategy(strategy="rsi", params={"period": 10}, strategy_id="r"))
    upd = e.update_params("DEMO01", m.UpdateParams(strategy_id="r", params={"oversold": 60}))
    assert isinstance(ok, m.Ok) and isinstance(upd, m.Error) and upd.field == "oversold"
    assert "allowed 1 to 49" in upd.message


def test_series_keep_only_the_configured_number_of_bars(data_dir):
    s = BarSeries(INFY, "5minute", max_bars=500)
    s.seed([Bar(INFY, "5minute", OPEN + 300 * i, 1, 1, 1, 1, 1) for i in range(700)])
    assert len(s.bars) == 500 and s.bars[0].start == OPEN + 300 * 200
    for i in range(700, 900):  # and live bars after the seed
        s.on_tick(Tick(INFY, "full", True, 1.0, exchange_timestamp=OPEN + 300 * i + 1))
    assert len(s.bars) == 500 and s.bars[-1].start == OPEN + 300 * 898


async def test_engine_series_use_the_configured_bound(bus, data_dir):
    e = engine_for(bus, data_dir, max_bars=50)
    assert e.series_for(INFY).bars.maxlen == 50


async def test_start_live_seeds_history_so_indicators_are_warm_at_the_first_tick(bus, sim, data_dir):
    from datetime import datetime, timedelta

    import numpy as np
    import talib

    from shared.kite.client import KiteClient
    from shared.kite.sessions import put_session, vault_for
    from shared.options.chain import IST
    from tests.simkit import login

    sim.reset_faults()
    user = "DEMO01"
    e = StrategyEngine(bus, stack_settings(bus.nc.connected_url.geturl(), data_dir, sim))  # 5 days of 5minute
    token = login(sim)
    await put_session(bus, vault_for(e.settings), user, sim.api_key, token)
    e.add(user, m.AddStrategy(strategy="ema_crossover", params={"fast": 20, "slow": 200}, tokens=[INFY],
                              strategy_id="ema"))
    reply = await e.start_live(user, [INFY], "full")
    assert isinstance(reply, m.Ok), reply
    series = e.series_for(INFY)
    assert reply.data["seeded_bars"] == len(series.bars) > 200 and len(series.bars) <= 500
    s = e.running["ema"].strategy
    assert s.fast.ready and s.slow.ready  # warm before any live tick
    end = datetime.now(IST).replace(hour=23, minute=59, second=59, microsecond=0)
    async with KiteClient(sim.api_key, token, root=sim.root) as kite:
        candles = await kite.historical_data(INFY, end - timedelta(days=8), end, "5minute")
    closes = np.array([c.close for c in candles if int(c.date.timestamp()) <= series.bars[-1].start][-500:])
    assert len(closes) == len(series.bars)
    assert s.fast.value == pytest.approx(talib.EMA(closes, 20)[-1], rel=1e-9)
    assert s.slow.value == pytest.approx(talib.EMA(closes, 200)[-1], rel=1e-9)
    assert e.signals_published == 0  # seeding never trades


async def test_strategies_added_or_retuned_mid_session_start_warm(bus, data_dir):
    import numpy as np
    import talib

    e = engine_for(bus, data_dir)
    rng = np.random.default_rng(4)
    closes = 100 + np.cumsum(rng.normal(0, 0.5, 300))
    e.series_for(INFY).seed([Bar(INFY, "5minute", OPEN - 300 * (300 - i), c, c + 1, c - 1, c, 100)
                             for i, c in enumerate(closes)])
    e.users["DEMO01"].live = True
    e.add("DEMO01", m.AddStrategy(strategy="ema_crossover", params={"fast": 10, "slow": 50}, tokens=[INFY],
                                  strategy_id="ema"))
    s = e.running["ema"].strategy
    assert s.fast.value == pytest.approx(talib.EMA(closes, 10)[-1], rel=1e-9)
    assert s.slow.value == pytest.approx(talib.EMA(closes, 50)[-1], rel=1e-9)
    assert await e.seed("DEMO01") == 300 and s.fast.value == pytest.approx(talib.EMA(closes, 10)[-1], rel=1e-9)
    assert isinstance(e.update_params("DEMO01", m.UpdateParams(strategy_id="ema", params={"fast": 20})), m.Ok)
    s = e.running["ema"].strategy
    assert s.fast.value == pytest.approx(talib.EMA(closes, 20)[-1], rel=1e-9)
    assert e.signals_published == 0


async def test_option_ticks_feed_the_chains_oi_tracker(bus, data_dir):
    from tests.shared.test_options import sim_instruments

    e = engine_for(bus, data_dir)
    e._set_instruments(sim_instruments())
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
