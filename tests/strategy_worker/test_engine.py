"""The engine on a real nats-server and a tmp SQLite store: completed bars on kta.bars.<interval>.
<token>, a strategy that raises is disabled and reported while the others go on, a restarted
worker resumes its books (positions from fills, signals in flight) instead of entering again,
per-user signal logs and strategy ids, quotas, bad ticks, bounded series, per-symbol warm-up."""

import asyncio
from typing import Annotated

import msgspec
import pytest
from msgspec import Meta

from shared import messages as m
from shared import subjects
from shared.messages import Bar, Tick, TransactionType
from strategy_worker.bars import BarSeries
from strategy_worker.commands import StrategyCommands
from strategy_worker.engine import StrategyEngine
from strategy_worker.seeding import Seeder
from strategy_worker.strategies import registry
from strategy_worker.strategies.base import BaseStrategy
from tests.helpers import eventually, stack_settings
from tests.strategy_worker.kit import INFY, INSTRUMENTS, OPEN, TCS

USER = "DEMO01"


class AboveLevel(BaseStrategy):
    """Test strategy: long while flat and a bar closes above ``level`` (a level, not an event:
    a fresh instance would enter again on the next such bar)."""

    name = "test_above_level"
    description = "test"

    class Params(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
        level: Annotated[float, Meta(ge=0, le=1e6, description="Entry level")] = 100.0

    def on_bar(self, bar: Bar) -> list:
        self.state["bars"] = self.state.get("bars", 0) + 1
        if bar.close > self.params.level:
            return [self.entry(TransactionType.BUY, 0.7, "above level", 0.01, price=bar.close)]
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
    for cls in (AboveLevel, Raiser):
        registry.register(cls)
    yield
    for cls in (AboveLevel, Raiser):
        registry.unregister(cls.name)


ENGINES: list[StrategyEngine] = []


@pytest.fixture(autouse=True)
async def close_engines():
    """An engine's broker clients follow the sessions in KV from a task on the test's bus: closed
    here, as the worker closes them, not left to the bus."""
    yield
    while ENGINES:
        await ENGINES.pop().clients.close()


class Worker:
    """The engine with its command surface, instruments loaded, users live, symbols ready."""

    def __init__(self, bus, data_dir, **overrides) -> None:
        self.e = StrategyEngine(bus, stack_settings(bus.nc.connected_url.geturl(), data_dir, **overrides))
        ENGINES.append(self.e)
        self.e.ctx.set_instruments(list(INSTRUMENTS))
        self.c = StrategyCommands(self.e, Seeder(self.e))

    def add(self, user: str, strategy: str, sid: str, tokens=(INFY,), **params) -> m.Ok | m.Error:
        self.e.users[user].live = False  # added, then live: no history is asked of a broker here
        reply = self.c.add(user, m.AddStrategy(strategy=strategy, params=params, tokens=list(tokens), strategy_id=sid))
        self.e.users[user].live = True
        for t in tokens:
            self.e.series_ready(t)
        return reply

    def instance(self, user: str, sid: str, token: int = INFY):
        return self.e.get(user, sid).runner.instances[token]


def tick(price: float, second: int, volume: int = 0, token: int = INFY) -> Tick:
    ts = OPEN + second
    return Tick(token, "full", True, price, volume_traded=volume, exchange_timestamp=ts, received_at=ts * 10**9)


async def bars_of(engine: StrategyEngine, closes: list[float], first_bar: int = 0, token: int = INFY) -> None:
    """One tick per 5-minute bar at its close price, then a tick into the next bar to complete it."""
    for i, c in enumerate(closes):
        await engine.on_tick(tick(c, 300 * (first_bar + i) + 10, volume=1000 * (first_bar + i + 1), token=token))
    await engine.on_tick(tick(closes[-1], 300 * (first_bar + len(closes)) + 10, token=token))


def filled(sig, qty: int | None = None, seq: int = 1) -> m.StrategyOutcome:
    q = qty or sig.quantity
    return m.StrategyOutcome(user_id=sig.user_id, strategy_id=sig.strategy_id, kind="filled", seq=seq,
                             signal_id=sig.id, order_kind=sig.intent, instrument_token=sig.instrument_token,
                             transaction_type=sig.transaction_type, quantity=q, price=10_100, position=q,
                             average_price=10_100, trade_id=f"T{seq}")


async def test_completed_bars_are_published_on_the_bars_subject(bus, data_dir):
    e = Worker(bus, data_dir).e
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


async def test_ticks_that_are_not_prices_never_become_bars(bus, data_dir):
    w = Worker(bus, data_dir)
    e = w.e
    for second, price in ((5, 100.0), (50, float("nan")), (60, float("inf")), (70, 0.0), (80, -3.0), (299, 101.0)):
        await e.on_tick(tick(price, second))
    await e.on_tick(tick(102.0, 301))
    bar = e.series_for(INFY).bars[-1]
    assert (bar.open, bar.high, bar.low, bar.close) == (100.0, 101.0, 100.0, 101.0)
    assert e.ticks_refused == 4 and e.ticks_seen == 3 and e.last_ticks[INFY].last_price == 102.0


async def test_a_strategy_that_raises_is_disabled_and_reported_others_go_on(bus, data_dir):
    w = Worker(bus, data_dir)
    statuses: asyncio.Queue = asyncio.Queue()

    async def on_status(st, msg):
        await statuses.put(st)

    await bus.subscribe(subjects.status(USER), m.WorkerStatus, on_status)
    assert isinstance(w.add(USER, "test_raiser", "bad"), m.Ok)
    assert isinstance(w.add(USER, "test_above_level", "good", level=1e5), m.Ok)
    await bars_of(w.e, [100.0, 101.0, 102.0, 103.0])
    bad, good = w.e.get(USER, "bad"), w.e.get(USER, "good")
    assert bad.status == "disabled" and bad.error == "ZeroDivisionError: division by zero in on_bar"
    assert w.instance(USER, "bad").state["bars"] == 2  # never called again once disabled
    assert good.status == "active" and w.instance(USER, "good").state["bars"] == 4
    st = await asyncio.wait_for(statuses.get(), 5)
    assert st.state == "degraded" and st.instance == "bad" and "disabled" in st.detail and "ZeroDivision" in st.detail
    listing = {r["strategy_id"]: r for r in w.c.listing(USER)}
    assert listing["bad"]["state"] == "disabled" and "ZeroDivisionError" in listing["bad"]["error"]
    again = Worker(bus, data_dir).e  # the disabled state is persisted: a restarted worker does not run it
    again.restore()
    assert again.get(USER, "bad").status == "disabled" and again.get(USER, "good").status == "active"


async def test_a_restarted_worker_resumes_its_books_without_entering_again(bus, data_dir, tmp_path):
    signals: list = []

    async def on_signal(sig, msg):
        signals.append(sig)

    await bus.subscribe(subjects.signals(USER), m.AnySignal, on_signal)
    first = Worker(bus, data_dir)
    first.add(USER, "test_above_level", "lvl", level=100)
    await bars_of(first.e, [99.0, 101.0, 102.0])
    await eventually(lambda: len(signals) == 1)
    assert signals[0].intent == "entry" and first.e.get(USER, "lvl").runner.positions() == {}  # in flight

    in_flight = Worker(bus, data_dir)  # restarted before the fill: the entry is still in flight
    in_flight.e.restore()
    in_flight.e.users[USER].live = True
    in_flight.e.series_ready(INFY)
    await bars_of(in_flight.e, [103.0, 104.0], first_bar=10)
    assert in_flight.e.signals_published == 0
    await in_flight.e.on_outcome(filled(signals[0]))
    assert in_flight.e.get(USER, "lvl").runner.positions() == {INFY: 1}

    restarted = Worker(bus, data_dir)  # and after the fill: it holds, and does not enter again
    restarted.e.restore()
    restarted.e.users[USER].live = True
    restarted.e.series_ready(INFY)
    assert restarted.e.get(USER, "lvl").runner.positions() == {INFY: 1}
    before = restarted.instance(USER, "lvl").state["bars"]
    await bars_of(restarted.e, [103.0, 104.0], first_bar=20)
    assert restarted.instance(USER, "lvl").state["bars"] == before + 2 and restarted.e.signals_published == 0

    (tmp_path / "elsewhere").mkdir()
    fresh = Worker(bus, tmp_path / "elsewhere")  # the control: without the store it enters again
    fresh.add(USER, "test_above_level", "lvl2", level=100)
    await bars_of(fresh.e, [103.0, 104.0], first_bar=20)
    assert fresh.e.signals_published == 1


async def test_signal_logs_and_strategy_ids_are_per_user(bus, data_dir):
    w = Worker(bus, data_dir)
    for user, level in (("ALICE1", 100.0), ("BOB001", 1e5)):
        assert isinstance(w.add(user, "test_above_level", "same-id", level=level), m.Ok)
    await bars_of(w.e, [101.0, 102.0])
    assert [s["strategy_id"] for s in w.e.users["ALICE1"].signal_log] == ["same-id"]
    assert list(w.e.users["BOB001"].signal_log) == []
    assert w.e.get("ALICE1", "same-id").runner.user_id == "ALICE1"
    dup = w.c.add("ALICE1", m.AddStrategy(strategy="rsi", strategy_id="same-id"))
    assert isinstance(dup, m.Error) and dup.code == "exists" and dup.field == "strategy_id"
    assert isinstance(w.c.remove("BOB001", "same-id"), m.Ok) and w.e.get("ALICE1", "same-id") is not None
    w.c.stop_live("ALICE1")
    await bars_of(w.e, [50.0, 150.0], first_bar=5)  # a user who stopped gets nothing
    assert len(w.e.users["ALICE1"].signal_log) == 1


async def test_bad_params_unknown_strategies_and_quotas_are_refused_naming_the_field(bus, data_dir):
    w = Worker(bus, data_dir, max_strategies_per_user=2, max_symbols_per_strategy=1)
    bad = w.c.add(USER, m.AddStrategy(strategy="rsi", params={"period": 1000}))
    assert isinstance(bad, m.Error) and bad.field == "period" and "allowed 2 to 100" in bad.message
    unknown = w.c.add(USER, m.AddStrategy(strategy="astrology"))
    assert isinstance(unknown, m.Error) and unknown.field == "strategy" and "ema_crossover" in unknown.message
    wide = w.c.add(USER, m.AddStrategy(strategy="rsi", tokens=[INFY, TCS]))
    assert isinstance(wide, m.Error) and wide.field == "tokens" and "KTA_MAX_SYMBOLS_PER_STRATEGY" in wide.message
    nowhere = w.c.add(USER, m.AddStrategy(strategy="rsi", tokens=[12345]))
    assert isinstance(nowhere, m.Error) and nowhere.field == "tokens"
    ok = w.c.add(USER, m.AddStrategy(strategy="rsi", params={"period": 10}, strategy_id="r", tokens=[INFY]))
    upd = w.c.update_params(USER, m.UpdateParams(strategy_id="r", params={"oversold": 60}))
    assert isinstance(ok, m.Ok) and isinstance(upd, m.Error) and upd.field == "oversold"
    assert "allowed 1 to 49" in upd.message
    assert isinstance(w.c.add(USER, m.AddStrategy(strategy="rsi", tokens=[TCS])), m.Ok)
    third = w.c.add(USER, m.AddStrategy(strategy="rsi", tokens=[TCS]))
    assert isinstance(third, m.Error) and third.code == "quota" and third.field == "strategy"
    busy = await w.c.start_live(USER, list(range(1, 600)), "full")
    assert isinstance(busy, m.Error) and busy.field == "tokens" and "KTA_MAX_LIVE_TOKENS_PER_USER" in busy.message


def test_series_keep_only_the_configured_number_of_bars(data_dir):
    s = BarSeries(INFY, "5minute", max_bars=500)
    s.seed([Bar(INFY, "5minute", OPEN + 300 * i, 1, 1, 1, 1, 1) for i in range(700)])
    assert len(s.bars) == 500 and s.bars[0].start == OPEN + 300 * 200
    for i in range(700, 900):  # and live bars after the seed
        s.on_tick(Tick(INFY, "full", True, 1.0, exchange_timestamp=OPEN + 300 * i + 1))
    assert len(s.bars) == 500 and s.bars[-1].start == OPEN + 300 * 898


def test_history_fetched_late_fills_in_behind_live_bars():
    s = BarSeries(INFY, "5minute")
    for i in (10, 11, 12):
        s.on_tick(Tick(INFY, "full", True, 1.0 * i, exchange_timestamp=OPEN + 300 * i + 1))
    assert s.seed([Bar(INFY, "5minute", OPEN + 300 * i, i, i, i, i, 1) for i in range(13)]) == 10
    assert [b.start for b in s.bars] == [OPEN + 300 * i for i in range(12)]  # no duplicate, the open bar not


async def test_engine_series_use_the_configured_bound(bus, data_dir):
    assert Worker(bus, data_dir, max_bars=50).e.series_for(INFY).bars.maxlen == 50


async def test_only_strategies_that_want_ticks_are_called_per_tick(bus, data_dir):
    class TickCounter(AboveLevel):
        name = "test_tick_counter"

        def on_tick(self, t):
            self.state["ticks"] = self.state.get("ticks", 0) + 1
            return []

    registry.register(TickCounter)
    try:
        w = Worker(bus, data_dir)
        for i in range(20):
            w.add(USER, "test_above_level", f"quiet{i}", level=1e5)
        w.add(USER, "test_tick_counter", "ticks", level=1e5)
        await bars_of(w.e, [100.0, 101.0])
        assert [r.strategy_id for r in w.e._tick_index[INFY]] == ["ticks"]
        assert w.instance(USER, "ticks").state["ticks"] == 3
    finally:
        registry.unregister("test_tick_counter")


async def test_start_live_seeds_history_in_the_background_so_indicators_are_warm(bus, sim, data_dir):
    from datetime import datetime, timedelta

    import numpy as np
    import talib

    from shared.ist import IST
    from shared.kite.client import KiteClient
    from shared.broker_sessions import put_session, vault_for
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

    from shared.ist import IST
    from shared.kite.client import KiteClient
    from shared.broker_sessions import put_session
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
