"""Two ``kta sim`` modes on real processes: ``--replay FILE.csv`` (the market follows the file's candles,
historical data and quotes agree with it) and ``--snapshot PATH`` (a restarted sim keeps its sessions,
orders, positions and clock; the file holds no access token)."""

from __future__ import annotations

import csv
from datetime import date, datetime, timedelta

import pytest
from kiteconnect import KiteConnect

from shared.ist import IST
from tests.helpers import eventually_blocking
from tests.kite_sim.kit import client, paced, sim_log, start_sim_with

pytestmark = [pytest.mark.slow(seconds=15), pytest.mark.timeout(120)]


def last_weekday(before: date) -> date:
    d = before - timedelta(days=1)
    while d.weekday() >= 5:
        d -= timedelta(days=1)
    return d


def write_replay(path, day: date) -> list[tuple]:
    """Twenty INFY minute candles, on ticks, drifting up, with a known high and low."""
    rows = []
    price = 1500.0
    for k in range(20):
        o = price
        c = round(o + (0.5 if k % 3 else -0.3), 2)
        h, lo = round(max(o, c) + 0.4, 2), round(min(o, c) - 0.2, 2)
        ts = datetime(day.year, day.month, day.day, 9, 15, tzinfo=IST) + timedelta(minutes=k)
        rows.append((ts.strftime("%Y-%m-%d %H:%M:%S"), o, h, lo, c, 1000 + k))
        price = c
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["symbol", "timestamp", "open", "high", "low", "close", "volume"])
        for r in rows:
            w.writerow(["INFY", *r])
    return rows


def test_replay_drives_quotes_and_history(tmp_path):
    day = last_weekday(date.today())
    rows = write_replay(tmp_path / "candles.csv", day)
    sim = start_sim_with(tmp_path, "--replay", str(tmp_path / "candles.csv"), speed=1.0)
    try:
        kite = client(sim)
        clock = sim.get("/sim/clock").json()
        assert clock["trading_day"] == day.isoformat()  # the sim starts on the file's first day
        ltp = paced(lambda: kite.ltp(["NSE:INFY"]))["NSE:INFY"]["last_price"]
        assert rows[0][2] >= ltp >= rows[0][3]  # inside the first candle
        wide = datetime.combine(day, datetime.min.time()), datetime.combine(day, datetime.max.time())
        candles = paced(lambda: kite.historical_data(408065, *wide, "minute"))
        for c, (_, o, h, lo, cl, v) in zip(candles, rows):
            assert (c["open"], c["high"], c["low"], c["close"], c["volume"]) == (o, h, lo, cl, v)
        assert paced(lambda: kite.ltp(["NSE:TCS"]))["NSE:TCS"]["last_price"] > 0  # others: the generator
    finally:
        sim.stop()


def test_bad_replay_file_fails_at_start(tmp_path):
    (tmp_path / "bad.csv").write_text("when,price\n2026-01-01,1\n")
    with pytest.raises(Exception):  # noqa: B017 - the process exits before it listens
        start_sim_with(tmp_path, "--replay", str(tmp_path / "bad.csv"))
    assert "missing column" in sim_log(tmp_path)


def test_snapshot_survives_a_restart(tmp_path):
    snap = tmp_path / "state.json"
    sim = start_sim_with(tmp_path, "--snapshot", str(snap))
    try:
        kite = client(sim)
        px = paced(lambda: kite.ltp(["NSE:INFY"]))["NSE:INFY"]["last_price"]
        done = paced(lambda: kite.place_order("regular", "NSE", "INFY", "BUY", 3, "MIS", "MARKET",
                                              market_protection=2))
        resting = paced(lambda: kite.place_order("regular", "NSE", "INFY", "BUY", 1, "CNC", "LIMIT",
                                                 price=round(round(px * 0.9 / 0.05) * 0.05, 2)))
        stop = round(round(px * 0.8 / 0.05) * 0.05, 2)
        gtt = paced(lambda: kite.place_gtt(kite.GTT_TYPE_SINGLE, "INFY", "NSE", [stop], px, [
            {"transaction_type": "SELL", "quantity": 2, "order_type": "LIMIT", "product": "CNC", "price": stop}]))
        before_clock = sim.get("/sim/clock").json()["epoch"]
        positions = paced(kite.positions)["net"]
    finally:
        sim.stop()  # SIGTERM: the shutdown writes the snapshot
    text = snap.read_text()
    assert kite.access_token not in text

    again = start_sim_with(tmp_path, "--snapshot", str(snap), port=None, log_name="sim2.log")
    try:
        kite2 = KiteConnect(again.api_key, root=again.root, access_token=kite.access_token)
        assert paced(kite2.profile)["user_id"] == "DEMO01"  # the session survived
        book = {o["order_id"]: o for o in paced(kite2.orders)}
        assert book[done]["status"] == "COMPLETE" and book[resting]["status"] == "OPEN"
        assert paced(kite2.positions)["net"][0]["quantity"] == positions[0]["quantity"] == 3
        assert again.get("/sim/clock").json()["epoch"] >= before_clock  # the clock resumed
        new = paced(lambda: kite2.place_order("regular", "NSE", "INFY", "SELL", 3, "MIS", "MARKET",
                                              market_protection=2))
        assert new not in book  # order ids continue, never reused
        kept = paced(lambda: kite2.get_gtt(gtt["trigger_id"]))
        assert kept["status"] == "active" and kept["condition"]["trigger_values"] == [stop]  # GTTs survive too
        assert kept["orders"][0]["quantity"] == 2
        later = paced(lambda: kite2.place_gtt(kite2.GTT_TYPE_SINGLE, "INFY", "NSE", [stop], px, [
            {"transaction_type": "SELL", "quantity": 1, "order_type": "LIMIT", "product": "CNC", "price": stop}]))
        assert later["trigger_id"] > gtt["trigger_id"]  # trigger ids continue too
        assert "restored 2 accounts and 1 sessions" in (tmp_path / "sim2.log").read_text()
    finally:
        again.stop()


def test_snapshot_is_written_on_change_so_a_killed_sim_keeps_its_state(tmp_path):
    snap = tmp_path / "state.json"
    sim = start_sim_with(tmp_path, "--snapshot", str(snap))
    try:
        kite = client(sim)
        oid = paced(lambda: kite.place_order("regular", "NSE", "SBIN", "BUY", 4, "MIS", "MARKET",
                                             market_protection=2))
        eventually_blocking(lambda: snap.exists() and oid in snap.read_text(), 10,
                            "the snapshot to hold the new order")
    finally:
        sim.proc.kill()  # no clean shutdown
        sim.proc.wait(10)
    again = start_sim_with(tmp_path, "--snapshot", str(snap), log_name="sim2.log")
    try:
        kite2 = KiteConnect(again.api_key, root=again.root, access_token=kite.access_token)
        assert paced(lambda: kite2.order_history(oid))[-1]["status"] == "COMPLETE"
        assert [p["quantity"] for p in paced(kite2.positions)["net"] if p["tradingsymbol"] == "SBIN"] == [4]
    finally:
        again.stop()
