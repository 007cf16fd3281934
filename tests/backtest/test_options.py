"""Option strategies backtested on kite_sim's candles: an iron condor over three days whose contracts come
from each day's instrument snapshot and whose option candles are fetched per contract into the candle
store through the Kite client; its groups placed by the live plan (hedges first), filled by the shared fill
model, charged by the shared table — and the P&L recomputed independently from the fills to the paisa.
A group whose short leg cannot fill is rolled back and leaves the book flat."""

from __future__ import annotations

import asyncio
import shutil
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pyarrow.parquet as pq
import pytest

from shared import ist
from shared.candles.instruments import InstrumentArchive
from shared.candles.store import Candles, CandleStore
from shared.charges import charges_paise
from shared.kite.client import KiteClient
from shared.kite.models import Instrument
from shared.messages import BacktestSpec
from strategy_worker.backtest.data import contract_spans, ensure, snapshot_instruments
from strategy_worker.backtest.job import candles_root, execute
from strategy_worker.backtest.service import BacktestService
from tests.helpers import eventually, eventually_blocking, stack_settings
from tests.simkit import login, start_sim

pytestmark = pytest.mark.slow(seconds=30)

DAYS = [date(2026, 3, 4), date(2026, 3, 5), date(2026, 3, 6)]  # Wed-Fri: NIFTY's weekly expires Tue 10th
NIFTY = 256265
TICK = 5
SPEC = BacktestSpec(strategy="iron_condor", symbols=["NIFTY 50"], start=DAYS[0], end=DAYS[-1], interval="minute",
                    params={"lots": 1}, warmup_bars=0)


def replay_csv(path):
    """Three quiet NIFTY sessions (a seeded walk, ~0.4 % a day) for kite_sim to replay."""
    rng = np.random.default_rng(11)
    price, rows = 26010.0, ["symbol,timestamp,open,high,low,close,volume"]
    for d in DAYS:
        t0 = int(datetime(d.year, d.month, d.day, 9, 15, tzinfo=ist.IST).timestamp())
        for k in range(375):
            o = price
            price = round(price * float(np.exp(rng.normal(0, 0.0002))), 2)
            wick = abs(float(rng.normal(0, 3)))
            rows.append(f"NIFTY,{ist.stamp(t0 + 60 * k)},{o:.2f},{max(o, price) + wick:.2f},"
                        f"{min(o, price) - wick:.2f},{price:.2f},0")
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def fetched(tmp_path_factory):
    """A data dir with each day's instrument snapshot and the candles an iron condor backtest needs, from a
    kite_sim that replays NIFTY and lists that day's contracts (its clock advanced a session at a time)."""
    tmp = tmp_path_factory.mktemp("options")
    sim = start_sim(tmp, speed=1, extra=("--replay", str(replay_csv(tmp / "NIFTY.csv"))))
    clock = lambda: sim.get("/sim/clock", timeout=5).json()  # noqa: E731
    try:
        access = login(sim)

        async def fetch() -> int:
            async with KiteClient(sim.api_key, access, root=sim.root) as kite:
                for d in DAYS:  # the dump lists the day's contracts once the sim has rolled into it
                    eventually_blocking(lambda d=d: clock()["listed_day"] == d.isoformat(), 20, f"sim on {d}")
                    await snapshot_instruments(kite, tmp, day=d)
                    sim.admin("advance", {"seconds": 22500})
                eventually_blocking(lambda: clock()["listed_day"] > DAYS[-1].isoformat(), 20, "the day after")
                return await ensure(kite, tmp, SPEC)

        written = asyncio.run(fetch())
    finally:
        sim.stop()
    assert written > 0
    return tmp


def candle_opens(data_dir, token: int) -> dict[int, int]:
    c = CandleStore(candles_root(data_dir)).read(token, "minute", 0, 2**33)
    return dict(zip(c.ts.tolist(), (c.open * 100).round().astype(int).tolist()))


def recompute(out, archive: InstrumentArchive) -> tuple[int, int]:
    """(cash, charges) from the fills alone: each fill's contract from its day's snapshot, its charges from the
    table for NFO options (NRML), expiries at their intrinsic value."""
    cash = charges = 0
    for f in out["parts"]["fills"]:
        day = ist.now(f["ts"]).date()
        exchange, symbol = f["symbol"].split(":")
        inst = next(i for i in archive.load(day) if i.tradingsymbol == symbol and i.exchange == exchange)
        assert f["kind"] != "expiry"  # the condor closes every day at its time exit
        assert f["charges"] == charges_paise(exchange, inst.instrument_type, "NRML", f["side"], f["quantity"],
                                             f["price"], on=day), f
        cash += (-1 if f["side"] == "BUY" else 1) * f["quantity"] * f["price"]
        charges += f["charges"]
    return cash, charges


def test_contracts_of_each_day_are_fetched_into_the_store(fetched):
    archive = InstrumentArchive(candles_root(fetched))
    spans = contract_spans(SPEC, fetched)
    store = CandleStore(candles_root(fetched))
    listed = {d: {i.instrument_token: i for i in archive.load(d, names={"NIFTY"})} for d in DAYS}
    assert len(spans) > 40  # both sides of the chain, a dozen strikes around wherever the spot went
    for token, (a, b) in spans.items():
        first = ist.now(a).date()
        inst = listed[first][token]  # a contract of the day it is first followed on
        assert inst.name == "NIFTY" and inst.instrument_type in ("CE", "PE") and inst.expiry == date(2026, 3, 10)
        assert not store.missing(token, "minute", a, b)  # fetched from then to the end of the range
        assert store.has_data(token, "minute", a, b)


def test_iron_condor_over_three_days_nets_exactly(fetched):
    out = execute(SPEC, fetched)
    m, fills, orders = out["metrics"], out["parts"]["fills"], out["parts"]["orders"]
    entries = [o for o in orders if o["kind"] == "entry"]
    assert m["groups"] >= 6 and m.get("groups_rolled_back", 0) == 0 and len(entries) >= 12, m
    by_group: dict[str, list[dict]] = {}
    for o in entries:
        by_group.setdefault(o["signal_id"] or o["tag"][:15], []).append(o)
    for legs in by_group.values():  # hedges first: both wings bought before either short is sold
        assert [o["side"] for o in legs] == ["BUY", "BUY", "SELL", "SELL"], legs
    archive = InstrumentArchive(candles_root(fetched))
    tokens = {f"NFO:{i.tradingsymbol}": i.instrument_token for d in DAYS for i in archive.load(d, names={"NIFTY"})}
    opens = {}
    for f in fills:  # every leg at its contract's open that minute, across the one-tick spread
        token = tokens[f["symbol"]]
        opens.setdefault(token, candle_opens(fetched, token))
        assert f["price"] == opens[token][f["ts"]] + (TICK if f["side"] == "BUY" else -TICK), f
    held: dict[str, int] = {}
    for f in fills:
        held[f["symbol"]] = held.get(f["symbol"], 0) + (f["quantity"] if f["side"] == "BUY" else -f["quantity"])
    assert set(held.values()) == {0}  # flat: every structure closed by its day's time exit
    cash, charges = recompute(out, archive)
    assert m["gross_pnl"] == cash and m["charges"] == charges and m["net_pnl"] == cash - charges
    assert m["final_equity"] == m["capital"] + cash - charges and len(out["parts"]["daily"]) == 3


def test_a_group_whose_short_leg_cannot_fill_is_rolled_back_flat(fetched, tmp_path):
    first = execute(SPEC, fetched)
    short = next(f for f in first["parts"]["fills"] if f["kind"] == "entry" and f["side"] == "SELL")
    data = tmp_path / "data"
    shutil.copytree(fetched, data, ignore=shutil.ignore_patterns("*.db*", "sim.log", "*.csv"))
    archive = InstrumentArchive(candles_root(data))
    token = next(i.instrument_token for i in archive.load(DAYS[0]) if f"NFO:{i.tradingsymbol}" == short["symbol"])
    month = CandleStore(candles_root(data)).series_dir(token, "minute") / f"{short['time'][:7]}.parquet"
    table = pq.read_table(month)
    pq.write_table(table.filter(np.asarray(table.column("ts")) != short["ts"]), month)  # no trade that minute

    out = execute(SPEC, data)
    at = [o for o in out["parts"]["orders"] if o["time"] == short["time"]]
    assert [(o["kind"], o["side"], o["status"]) for o in at[:3]] == [
        ("entry", "BUY", "COMPLETE"), ("entry", "BUY", "COMPLETE"), ("entry", "SELL", "CANCELLED")], at
    assert [(o["kind"], o["side"], o["status"]) for o in at[3:5]] == [
        ("rollback", "SELL", "COMPLETE"), ("rollback", "SELL", "COMPLETE")], at
    moved: dict[str, int] = {}
    for f in out["parts"]["fills"]:
        if f["time"] == short["time"]:
            moved[f["symbol"]] = moved.get(f["symbol"], 0) + (f["quantity"] if f["side"] == "BUY" else -f["quantity"])
    assert moved and set(moved.values()) == {0}  # the wings sold back: the book is as before the group
    assert out["metrics"]["groups_rolled_back"] == 1
    assert any(r["code"] == "rolled_back" for r in out["parts"]["refusals"])
    # the strategy heard it was flat again and entered on a later minute of the same day
    later = [o for o in out["parts"]["orders"] if o["kind"] == "entry" and o["status"] == "COMPLETE"
             and short["time"] < o["time"] < short["time"][:10] + " 15:30:00"]
    assert len(later) >= 4
    cash, charges = recompute(out, archive)
    assert out["metrics"]["net_pnl"] == cash - charges


def _chain_day(day: date, strikes: range, spot_at, drop: tuple[str, int] | None = None):
    """An index and its options expiring on ``day``: instruments and minute candles (time value fading to
    nothing by the close, intrinsic value against ``spot_at(minute)``); ``drop`` = (symbol, from minute)
    leaves that contract without trades from then on."""
    t0 = int(datetime(day.year, day.month, day.day, 9, 15, tzinfo=ist.IST).timestamp())
    index = Instrument(instrument_token=NIFTY, exchange_token=NIFTY >> 8, tradingsymbol="NIFTY 50", name="NIFTY 50",
                       last_price=0, expiry=None, strike=0, tick_size=0, lot_size=0, instrument_type="EQ",
                       segment="INDICES", exchange="NSE")
    insts, series = [index], {NIFTY: []}
    for n, strike in enumerate(strikes):
        for kind in ("CE", "PE"):
            token = (40000 + 2 * n + (kind == "PE")) * 256 + 2
            insts.append(Instrument(instrument_token=token, exchange_token=token >> 8, name="NIFTY", last_price=0,
                                    tradingsymbol=f"NIFTY26{day.month}{day.day:02d}{strike}{kind}", expiry=day,
                                    strike=float(strike), tick_size=0.05, lot_size=65, instrument_type=kind,
                                    segment="NFO-OPT", exchange="NFO"))
            series[token] = []
    for k in range(375):
        spot = spot_at(k)
        series[NIFTY].append((t0 + 60 * k, spot, spot, spot, spot, 0, 0))
        for inst in insts[1:]:
            if drop and inst.tradingsymbol == drop[0] and k >= drop[1]:
                continue
            value = max(0.0, spot - inst.strike if inst.instrument_type == "CE" else inst.strike - spot)
            px = round((value + 1 + 30 * (1 - k / 375)) * 20) / 20
            series[inst.instrument_token].append((t0 + 60 * k, px, px, px, px, 100, 0))
    return insts, {t: Candles.from_rows(rows) for t, rows in series.items()}


def test_a_long_straddle_still_held_at_expiry_is_settled_at_its_intrinsic_value(tmp_path):
    day = date(2026, 3, 10)  # NIFTY's expiry: the expiry-day exit at 14:00, the contracts settle at the close
    put = "NIFTY26310" + "26000PE"
    insts, series = _chain_day(day, range(25800, 26250, 50), lambda k: 26000.0 if k < 285 else 26000.0 - (k - 285),
                               drop=(put, 286))  # the put stops trading right after 14:00: its exit cannot fill
    store = CandleStore(candles_root(tmp_path))
    for token, c in series.items():
        store.write(token, "minute", c)
    InstrumentArchive(candles_root(tmp_path)).save(day, insts)
    spec = BacktestSpec(strategy="straddle", symbols=["NIFTY 50"], start=day, end=day, interval="minute",
                        params={"side": "long", "lots": 1}, warmup_bars=0)
    out = execute(spec, tmp_path)
    m, fills = out["metrics"], out["parts"]["fills"]
    assert [(f["kind"], f["side"], f["symbol"][-7:]) for f in fills[:2]] == [("entry", "BUY", "26000CE"),
                                                                             ("entry", "BUY", "26000PE")]
    exits = [f for f in fills if f["kind"] == "exit"]
    assert [(f["time"][11:], f["symbol"][-7:]) for f in exits] == [("14:01:00", "26000CE")]  # the call only
    assert m["groups_needing_attention"] >= 1  # the put's exit legs found no one, minute after minute
    settled = [f for f in fills if f["kind"] == "expiry"]
    spot_close = 26000 - (374 - 285)
    assert [(f["symbol"], f["side"], f["quantity"], f["price"]) for f in settled] == [
        (f"NFO:{put}", "SELL", 65, (26000 - spot_close) * 100)]  # cash at the intrinsic value
    stt = Decimal(26000 - spot_close) * 65 * Decimal("0.125") / 100  # exercised long ITM: STT on the intrinsic
    assert settled[0]["charges"] == int((stt * 100).quantize(Decimal(1), ROUND_HALF_UP))
    cash = sum((-1 if f["side"] == "BUY" else 1) * f["quantity"] * f["price"] for f in fills)
    assert m["net_pnl"] == cash - sum(f["charges"] for f in fills) and m["gross_pnl"] == cash


async def test_the_strategy_worker_keeps_each_days_instrument_list(nats_server, bus, data_dir, tmp_path):
    """The worker's instrument cache loads the day's list: the backtest service files it as the day's snapshot
    (once), which is where an options backtest of that day finds its contracts."""
    settings = stack_settings(nats_server, data_dir)
    service = await BacktestService(bus, settings).start()
    try:
        day = date(2026, 3, 10)
        insts, _ = _chain_day(day, range(26000, 26100, 50), lambda k: 26000.0)
        cache = service.clients.instruments
        cache.clock = lambda: datetime(2026, 3, 10, 8, 40, tzinfo=ist.IST).timestamp()
        cache.load(insts)
        cache.load(insts[:1])  # a reload the same day (even while the first is written) keeps the first list
        archive = InstrumentArchive(candles_root(data_dir))
        await eventually(lambda: archive.has(day), what="the day's snapshot")
        assert archive.load(day) == insts
    finally:
        await service.close()
