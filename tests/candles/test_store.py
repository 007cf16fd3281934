"""The candle store: month files merged in place, coverage, streaming reads, CSV import, instrument
snapshots, and a refresh from a real kite_sim through the Kite client."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from shared.candles import CandleError, Candles, CandleStore, day_bounds
from shared.candles.csv_import import import_csv
from shared.candles.fetch import plan, refresh
from shared.candles.instruments import InstrumentArchive
from shared.ist import IST
from shared.kite.client import KiteClient
from shared.kite.models import Instrument
from tests.simkit import login

T0 = int(datetime(2025, 1, 30, 9, 15, tzinfo=IST).timestamp())


def minutes(n: int, start: int = T0, price: float = 100.0) -> Candles:
    return Candles.from_rows([(start + 60 * i, price + i, price + i + 1, price + i - 1, price + i + 0.5, 10 * i)
                              for i in range(n)])


def test_write_merges_months_and_reads_a_range(tmp_path):
    store = CandleStore(tmp_path)
    store.write(408065, "minute", minutes(3 * 24 * 60))  # 30 Jan → 1 Feb: two month files
    assert store.months(408065, "minute") == ["2025-01", "2025-02"]
    again = minutes(10, start=T0 + 60 * 5, price=500.0)  # overlapping candles replace the old ones
    store.write(408065, "minute", again)
    got = store.read(408065, "minute", T0, T0 + 60 * 20)
    assert len(got) == 21
    assert list(got.close[4:7]) == [104.5, 500.5, 501.5] and list(got.close[14:16]) == [509.5, 115.5]
    assert [len(c) for c in store.iter_months(408065, "minute", T0, T0 + 3 * 86400)] == [2 * 86400 // 60 - 555,
                                                                                        86400 // 60 + 555]
    last = store.last(408065, "minute", T0 + 60 * 100, 30)
    assert len(last) == 30 and last.ts[-1] == T0 + 60 * 99
    assert store.covered(408065, "minute") == [[T0, T0 + 60 * (3 * 24 * 60 - 1)]]
    assert store.missing(408065, "minute", T0 - 100, T0 + 10) == [(T0 - 100, T0 - 1)]


def test_unknown_interval_is_named(tmp_path):
    with pytest.raises(CandleError) as e:
        CandleStore(tmp_path).write(1, "2minute", minutes(1))
    assert e.value.field == "interval"


def test_csv_import_replay_format(tmp_path):
    csv = tmp_path / "candles.csv"
    csv.write_text("symbol,timestamp,open,high,low,close,volume\n"
                   "INFY,2026-03-02 09:15:00,1500.0,1500.9,1499.8,1500.5,1000\n"
                   "INFY,2026-03-02T09:16:00+0530,1500.5,1501.4,1500.3,1501.0,1001\n"
                   "TCS,2026-03-02 09:15:00,3000,3001,2999,3000.5,7\n")
    store = CandleStore(tmp_path / "store")
    tokens = {"INFY": 408065, "TCS": 2953217}
    assert import_csv(store, csv, "minute", tokens.__getitem__) == {"INFY": 2, "TCS": 1}
    start, end = day_bounds(date(2026, 3, 2), date(2026, 3, 2))
    assert list(store.read(408065, "minute", start, end).close) == [1500.5, 1501.0]
    bad = tmp_path / "INFY.csv"
    bad.write_text("timestamp,open,high,low,close,volume\n2026-03-02 09:15:00,10,9,8,9.5,1\n")
    with pytest.raises(CandleError, match="INFY.csv:2"):
        import_csv(store, bad, "minute", tokens.__getitem__)


def test_instrument_snapshots_answer_for_past_days(tmp_path):
    archive = InstrumentArchive(tmp_path)
    opt = Instrument(instrument_token=1, exchange_token=1, tradingsymbol="NIFTY25JAN23000CE", name="NIFTY",
                     last_price=0, expiry=date(2025, 1, 30), strike=23000, tick_size=0.05, lot_size=75,
                     instrument_type="CE", segment="NFO-OPT", exchange="NFO")
    archive.save(date(2025, 1, 20), [opt])
    archive.save(date(2025, 2, 3), [])
    assert archive.load(date(2025, 1, 28)) == [opt]  # the contract that existed that day
    assert archive.load(date(2025, 2, 5)) == []
    assert archive.load(date(2025, 1, 1)) == [opt]  # before any snapshot: the earliest


async def test_refresh_from_kite_sim_is_incremental(sim, tmp_path):
    store = CandleStore(tmp_path)
    async with KiteClient(sim.api_key, login(sim), root=sim.root) as kite:
        sim_now = (await kite._http.get("/sim/clock")).json()["epoch"]  # the sim's market clock
        end = int(sim_now)
        start = end - 5 * 86400
        done: list[tuple[int, int]] = []
        wrote = await refresh(kite, store, [408065], "5minute", start, end, now=sim_now,
                              progress=lambda i, n, what: done.append((i, n)))
        assert wrote > 100 and done[-1][0] == done[-1][1]
        got = store.read(408065, "5minute", start, end)
        assert len(got) == wrote and (got.ts % 300 == 15 * 60 % 300).all()
        # everything but the forming part of today is covered: nothing to fetch again before it
        assert [(a, b) for a, b in plan(store, 408065, "5minute", start, end) if b < end - 86400] == []
        assert await refresh(kite, store, [408065], "5minute", start, end - 86400, now=sim_now) == 0
