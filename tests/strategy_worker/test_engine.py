"""The engine on a real nats-server and a tmp SQLite store: completed bars on kta.bars.<interval>.
<token>, a strategy that raises is disabled and reported while the others go on, a restarted
worker resumes its books (positions from fills, signals in flight) instead of entering again,
per-user signal logs and strategy ids, quotas, bad ticks, bounded series, ticks only to those that want
them. History and warm-up: test_engine_warmup.py."""

import asyncio

from shared import messages as m
from shared import subjects
from shared.messages import Bar, Tick
from strategy_worker.bars import BarSeries
from strategy_worker.engine import StrategyEngine
from strategy_worker.strategies import registry
from tests.helpers import eventually, stack_settings
from tests.strategy_worker.engine_kit import (  # noqa: F401 - autouse
    USER,
    AboveLevel,
    Worker,
    bars_of,
    close_engines,
    filled,
    tick,
    with_test_strategies,
)
from tests.strategy_worker.kit import INFY, INSTRUMENTS, OPEN, TCS


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
    # its count of signals too (the strategies panel read 0 after a partition's takeover: trader session)
    assert in_flight.e.get(USER, "lvl").signals == 1
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


async def test_a_loaded_instrument_list_reaches_the_strategies_with_the_lookups_the_cache_built(bus, data_dir):
    """The cache builds its lookups in a thread; its listener hands them to the strategies' context as they are, not
    built again on the event loop (~55 ms there for Kite's ~90,000 rows, ticks queued behind)."""
    e = StrategyEngine(bus, stack_settings(bus.nc.connected_url.geturl(), data_dir))
    cache = e.clients.instruments
    cache.clock = lambda: OPEN

    async def fetch():
        return list(INSTRUMENTS)

    try:
        await cache.ensure(fetch)
        assert e.ctx.instruments is cache.rows
        assert e.ctx.by_token is cache.by_token and e.ctx.by_symbol is cache.by_key
        assert e.ctx.by_symbol["NSE:INFY"] is e.ctx.by_token[INFY]
    finally:
        await e.clients.close()
