"""The backtest engine on seeded minute bars: fills by the shared fill model, the live order plan and risk,
Zerodha's charges, P&L that agrees with an independent recomputation from the fills, determinism, and
bad input refused naming the field."""

from __future__ import annotations

import threading
from datetime import timedelta

import msgspec
import pytest

from shared import ist
from shared.candles.store import CandleStore
from shared.charges import charges_paise
from shared.messages import BacktestSpec, RiskLimits
from strategy_worker.backtest.engine import Backtest, BacktestError, Cancelled
from strategy_worker.backtest.job import execute
from tests.backtest.kit import INFY, INSTRUMENTS, TCS, seed_store

TICK = 5


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("bt")
    days = seed_store(d, days=4)
    return d, days


def spec(days, **kw) -> BacktestSpec:
    base = dict(strategy="ema_crossover", symbols=["INFY", "NSE:TCS"], start=days[1], end=days[-1],
                interval="minute", params={"fast": 5, "slow": 20, "quantity": 10}, warmup_bars=100)
    return BacktestSpec(**{**base, **kw})


def bars_by_time(data_dir, token):
    c = CandleStore(data_dir / "candles").read(token, "minute", 0, 2**33)
    paise = lambda a: (a * 100).round().astype(int).tolist()  # noqa: E731
    return {ist.stamp(t): bar for t, *bar in zip(c.ts.tolist(), paise(c.open), paise(c.high), paise(c.low),
                                                 paise(c.close))}


def test_fills_charges_and_money_add_up(data):
    d, days = data
    out = execute(spec(days), d)
    m, fills, trades = out["metrics"], out["parts"]["fills"], out["parts"]["trades"]
    assert m["trades"] > 5 and m["bars"] == 2 * 3 * 375
    bars = {INFY.tradingsymbol: bars_by_time(d, INFY.instrument_token),
            TCS.tradingsymbol: bars_by_time(d, TCS.instrument_token)}
    cross = lambda f: TICK if f["side"] == "BUY" else -TICK  # noqa: E731 - one tick of spread
    for f in fills:
        symbol_bars = bars[f["symbol"].split(":")[1]]
        if f["kind"] == "external":  # MIS square-off at the day's last close (stamped at its end)
            assert f["time"].endswith("15:29:59")
            assert f["price"] == symbol_bars[ist.stamp(f["ts"] - 59)][3] + cross(f), f
            continue
        o, h, lo, c = symbol_bars[f["time"]]
        if f["kind"] in ("entry", "exit"):  # MARKET at the open after the signal's bar
            assert f["price"] == o + cross(f), f
        else:  # a stop-loss or target inside the bar
            assert lo - TICK <= f["price"] <= h + TICK, f
        day = ist.now(f["ts"]).date()
        assert f["charges"] == charges_paise("NSE", "EQ", "MIS", f["side"], f["quantity"], f["price"], on=day)
    # MIS: flat at every day's end, so the book is flat at the end
    held: dict[str, int] = {}
    for f in fills:
        held[f["symbol"]] = held.get(f["symbol"], 0) + (f["quantity"] if f["side"] == "BUY" else -f["quantity"])
    assert set(held.values()) == {0}
    # P&L recomputed from the fills alone, to the paisa
    cash = sum((-1 if f["side"] == "BUY" else 1) * f["quantity"] * f["price"] for f in fills)
    charges = sum(f["charges"] for f in fills)
    assert m["gross_pnl"] == cash and m["charges"] == charges and m["net_pnl"] == cash - charges
    assert sum(t["net_pnl"] for t in trades) == pytest.approx(cash - charges, abs=len(trades))  # per-unit rounding
    assert m["final_equity"] == m["capital"] + m["net_pnl"]
    assert out["parts"]["daily"][-1][1] == m["final_equity"] and len(out["parts"]["daily"]) == 3


def test_runs_are_deterministic(data):
    d, days = data
    a, b = execute(spec(days), d), execute(spec(days), d)
    assert a["metrics"] | {"bars_per_second": 0} == b["metrics"] | {"bars_per_second": 0}
    assert a["parts"]["orders"] == b["parts"]["orders"] and a["parts"]["trades"] == b["parts"]["trades"]


def test_risk_refuses_and_the_strategy_hears_it(data):
    d, days = data
    out = execute(spec(days, risk=RiskLimits(max_position_qty=5)), d)
    assert out["metrics"]["trades"] == 0 and out["metrics"]["refused"] > 0
    assert {r["code"] for r in out["parts"]["refusals"]} == {"POSITION_SIZE"}
    bt = Backtest(spec(days, risk=RiskLimits(max_position_qty=5)), INSTRUMENTS, CandleStore(d / "candles"))
    heard = []
    for inst in bt.setup.runner.instances.values():
        inst.on_refused = lambda o, heard=heard: heard.append(o.code) or []
    bt.run()
    assert heard and set(heard) == {"POSITION_SIZE"}


@pytest.mark.parametrize("change,field", [
    ({"symbols": ["NOPE"]}, "symbols"),
    ({"params": {"fast": 500}}, "params.fast"),
    ({"params": {"fast": 30, "slow": 20}}, "params.fast"),
    ({"strategy": "nope"}, "strategy"),
])
def test_bad_input_names_the_field(data, change, field):
    d, days = data
    with pytest.raises(BacktestError) as e:
        execute(spec(days, **change), d)
    assert e.value.field == field


def test_no_data_and_bad_interval(data):
    d, days = data
    with pytest.raises(BacktestError) as e:
        execute(spec(days, start=days[0] - timedelta(days=30), end=days[0] - timedelta(days=20)), d)
    assert e.value.field == "start" and "kta candles refresh" in str(e.value)
    with pytest.raises(msgspec.ValidationError, match=r"\$\.interval"):
        msgspec.convert({**msgspec.to_builtins(spec(days)), "interval": "2minute"}, BacktestSpec)


def test_cancel_stops_the_run(data):
    d, days = data
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        execute(spec(days), d, cancel=stop)
