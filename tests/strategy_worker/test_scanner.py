"""The stock scanner over NATS against kite_sim's real quote and historical endpoints: every metric
recomputed independently (TA-Lib RSI, pandas volume average, 52-week range from candles fetched
separately), the membership of each condition checked against that recomputation, and bad scans
refused naming the field."""

from datetime import datetime, time, timedelta

import numpy as np
import pandas as pd
import pytest
import talib

from shared import messages as m
from shared import subjects
from shared.ist import IST
from shared.kite.client import KiteClient
from shared.broker_sessions import put_session, vault_for
from strategy_worker.main import amain as strategy_main
from tests.helpers import running, stack_settings, wait_health
from tests.simkit import login

pytestmark = pytest.mark.slow(seconds=17)

SYMBOLS = ["NSE:RELIANCE", "NSE:INFY", "NSE:TCS", "NSE:HDFCBANK", "NSE:SBIN", "NSE:ITC", "NSE:LT", "NSE:WIPRO",
           "NSE:TITAN"]
LOOKBACK = 60


def split_at_widest_gap(values: list[float]) -> float:
    """A threshold in the middle of the widest gap between the middle values, so that prices
    moving a hair between two scans cannot move a symbol across it."""
    v = sorted(values)
    lo, hi = len(v) // 4, len(v) - len(v) // 4
    i = max(range(lo, hi - 1), key=lambda j: v[j + 1] - v[j])
    return (v[i] + v[i + 1]) / 2


async def independent(kite: KiteClient, row: dict) -> dict:
    """The row's history metrics from candles this test fetches itself."""
    today = datetime.strptime(row["as_of"][:10], "%Y-%m-%d").date()
    candles = await kite.historical_data(row["instrument_token"],
                                         datetime.combine(today - timedelta(days=LOOKBACK), time(0), IST),
                                         datetime.combine(today, time(23, 59), IST), "day")
    df = pd.DataFrame([(c.date.date(), c.high, c.low, c.close, c.volume) for c in candles],
                      columns=["day", "high", "low", "close", "volume"])
    df = df[df.day < today]
    closes = np.append(df.close.to_numpy(dtype=float), row["last_price"])
    return {
        "rsi": float(talib.RSI(closes, 14)[-1]),
        "volume_ratio": row["volume"] / df.volume.tail(20).mean(),
        "high_52w": max(df.high.max(), row["high"]),
        "low_52w": min(df.low.min(), row["low"]),
        "gap_pct": (row["open"] - row["prev_close"]) / row["prev_close"] * 100,
        "change_pct": (row["last_price"] - row["prev_close"]) / row["prev_close"] * 100,
    }


async def test_scanner_over_nats_against_an_independent_recomputation(bus, sim, data_dir):
    sim.reset_faults()
    settings = stack_settings(bus.nc.connected_url.geturl(), data_dir, sim, seed_days=0)
    user = "DEMO01"
    token = login(sim)
    subject = subjects.cmd(user, "strategy", "scan")
    async with running(strategy_main, settings):
        await wait_health(bus, "strategy")
        early = await bus.request(subject, m.Scan(symbols=["NSE:INFY"]))
        assert isinstance(early, m.Error) and early.code == "broker_not_connected"
        await put_session(bus, vault_for(settings), user, sim.api_key, token)

        # every symbol, every metric: RSI below 100 holds for all and forces the history pass
        everything = await bus.request(subject, m.Scan(symbols=SYMBOLS, rsi_below=100, lookback_days=LOOKBACK,
                                                       sort_by="symbol", limit=500), timeout=60)
        assert isinstance(everything, m.Ok), everything
        rows = everything.data["rows"]
        assert [r["symbol"] for r in rows] == sorted(SYMBOLS) and everything.data["scanned"] == len(SYMBOLS)
        assert everything.data["universe"] == f"the {len(SYMBOLS)} symbol(s) given"
        async with KiteClient(sim.api_key, token, root=sim.root) as kite:
            for row in rows:
                ref = await independent(kite, {**row, "as_of": everything.data["as_of"]})
                for key, value in ref.items():
                    assert row[key] == pytest.approx(value, rel=1e-3, abs=1e-3), (row["symbol"], key)
                assert row["pct_from_high"] == pytest.approx(
                    (ref["high_52w"] - row["last_price"]) / ref["high_52w"] * 100, abs=1e-3)
                assert row["days"] >= 30

        by_symbol = {r["symbol"]: r for r in rows}

        async def scan(**conditions) -> set[str]:
            reply = await bus.request(subject, m.Scan(symbols=SYMBOLS, lookback_days=LOOKBACK, limit=500,
                                                      **conditions), timeout=60)
            assert isinstance(reply, m.Ok), reply
            for r in reply.data["rows"]:
                assert r["matched"], r  # each row says which conditions it met
            return {r["symbol"] for r in reply.data["rows"]}

        # one scan per condition (Kite paces quotes at one call a second, so they are few)
        rsi_cut = split_at_widest_gap([r["rsi"] for r in rows])
        assert await scan(rsi_below=rsi_cut) == {s for s, r in by_symbol.items() if r["rsi"] < rsi_cut}
        ratio_cut = max(1.0, split_at_widest_gap([r["volume_ratio"] for r in rows]))
        assert await scan(volume_spike=ratio_cut) == {s for s, r in by_symbol.items()
                                                      if r["volume_ratio"] >= ratio_cut}
        high_cut = split_at_widest_gap([r["pct_from_high"] for r in rows])
        assert await scan(near_high_pct=high_cut) == {s for s, r in by_symbol.items()
                                                      if r["pct_from_high"] <= high_cut}
        price_cut = split_at_widest_gap([r["last_price"] for r in rows])
        assert await scan(max_price=price_cut, rsi_above=rsi_cut) == {  # conditions combine with AND
            s for s, r in by_symbol.items() if r["last_price"] <= price_cut and r["rsi"] > rsi_cut}
        gaps = [r["gap_pct"] for r in rows]
        if max(gaps) > 0:
            up_cut = split_at_widest_gap([g for g in gaps if g > 0] + [0.0, 0.0]) or max(gaps) / 2
            assert await scan(gap_up_pct=up_cut) == {s for s, r in by_symbol.items() if r["gap_pct"] >= up_cut}

        top = await bus.request(subject, m.Scan(symbols=SYMBOLS, rsi_below=100, lookback_days=LOOKBACK,
                                                sort_by="change_pct", limit=3))
        changes = [r["change_pct"] for r in top.data["rows"]]
        assert changes == sorted(changes, reverse=True) and len(changes) == 3
        assert top.data["matched"] == len(SYMBOLS)

        # the whole NSE equity universe when no symbols are named (quote-only: no history fetched)
        universe = await bus.request(subject, m.Scan(min_price=0, sort_by="symbol", limit=500))
        assert universe.data["scanned"] >= 40 and set(SYMBOLS) <= {r["symbol"] for r in universe.data["rows"]}
        assert universe.data["universe"] == f"every NSE equity in the broker's instrument list ({universe.data['scanned']})"

        bad = await bus.request(subject, m.Scan(symbols=["NSE:NOSUCHCO"]))
        assert isinstance(bad, m.Error) and bad.field == "symbols" and "NSE:NOSUCHCO" in bad.message
        inverted = await bus.request(subject, m.Scan(min_price=500, max_price=100))
        assert isinstance(inverted, m.Error) and inverted.field == "max_price"


async def test_out_of_range_scan_fields_are_refused_naming_the_field(bus, data_dir):
    settings = stack_settings(bus.nc.connected_url.geturl(), data_dir)
    subject = subjects.cmd("DEMO01", "strategy", "scan")
    async with running(strategy_main, settings):
        await wait_health(bus, "strategy")
        for payload, field in (({"rsi_below": 150}, "rsi_below"), ({"limit": 0}, "limit"),
                               ({"symbols": ["infy"]}, "symbols[0]"), ({"volume_spike": 0.5}, "volume_spike"),
                               ({"sort_by": "luck"}, "sort_by")):
            raw = await bus.nc.request(subject, m.msgspec.msgpack.encode({"type": "scan", **payload}), timeout=5)
            reply = m.reply_decoder.decode(raw.data)
            assert isinstance(reply, m.Error) and reply.field == field, (payload, reply)


def test_conditions_on_hand_built_quotes_and_candles():
    """The conditions the live test cannot steer (gap down, near the low, volume floor), on
    quotes and candles built by hand, with RSI from TA-Lib."""
    from shared.kite.models import Candle, OHLCValues, Quote
    from strategy_worker.scanner import (
        history_conditions,
        history_metrics,
        quote_conditions,
        quote_metrics,
        sort_rows,
    )

    day0 = datetime(2026, 9, 1, 9, 15, tzinfo=IST)
    rng = np.random.default_rng(12)
    closes = 500 * np.exp(np.cumsum(rng.normal(0, 0.02, 80)))
    candles = [Candle(day0 + timedelta(days=i), c, c * 1.01, c * 0.99, c, int(1000 + 10 * i))
               for i, c in enumerate(closes)]
    prev = float(closes[-1])
    quote = Quote(instrument_token=1, last_price=prev * 0.95, volume=5000,
                  ohlc=OHLCValues(open=prev * 0.96, high=prev * 0.97, low=prev * 0.94, close=prev))
    base = m.Scan(gap_down_pct=3.5, min_volume=4000, near_low_pct=50, rsi_below=100, volume_days=10)
    row = quote_metrics("NSE:X", quote)
    assert row["gap_pct"] == pytest.approx(-4.0) and row["change_pct"] == pytest.approx(-5.0)
    assert quote_conditions(row, base) == ["volume ≥ 4000", "gap down -4.0%"]
    assert quote_conditions(row, m.Scan(gap_down_pct=4.5)) is None
    assert quote_conditions(row, m.Scan(gap_up_pct=1)) is None
    assert quote_conditions(row, m.Scan(min_volume=5001)) is None
    full = history_metrics(row, candles, base)
    low = min(float((closes * 0.99).min()), prev * 0.94)
    assert full["low_52w"] == pytest.approx(low)
    assert full["pct_from_low"] == pytest.approx((prev * 0.95 - low) / low * 100, abs=1e-4)
    assert full["volume_ratio"] == pytest.approx(5000 / np.mean([1000 + 10 * i for i in range(70, 80)]), abs=1e-4)
    assert full["rsi"] == pytest.approx(talib.RSI(np.append(closes, prev * 0.95), 14)[-1], abs=1e-4)
    assert history_conditions(full, m.Scan(near_low_pct=full["pct_from_low"] + 0.01)) is not None
    assert history_conditions(full, m.Scan(near_low_pct=max(0.0, full["pct_from_low"] - 0.01))) is None
    assert history_conditions(full, m.Scan(volume_spike=full["volume_ratio"] + 0.01)) is None
    rows = [{"symbol": s, "gap_pct": g, "rsi": r, "volume_ratio": v, "change_pct": c}
            for s, g, r, v, c in (("A", -5, 20, None, 1), ("B", 3, None, 2, -2), ("C", 1, 50, 9, 3))]
    assert [r["symbol"] for r in sort_rows(rows, "gap_pct")] == ["A", "B", "C"]  # by size, either way
    assert [r["symbol"] for r in sort_rows(rows, "rsi")] == ["A", "C", "B"]  # most oversold first
    assert [r["symbol"] for r in sort_rows(rows, "volume_ratio")] == ["C", "B", "A"]  # unknown last
    assert [r["symbol"] for r in sort_rows(rows, "change_pct")] == ["C", "A", "B"]
