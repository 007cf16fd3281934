"""Option structures in a backtest's results: each one from its entry group's first fill until every leg is flat
again, its legs and its P&L from its own fills (together the run's P&L to the paisa), how it ended; and the
input an option strategy cannot run on refused naming the field (a stock without options, daily bars, no contract
candles). Data: NIFTY 50 and its weekly chain priced by Black-Scholes, written straight to the store (kit)."""

from __future__ import annotations

import contextlib
import shutil

import pytest

from shared import messages as m
from shared import natsd
from shared.broker_sessions import put_session, vault_for
from shared.subjects import KV_BROKER_SESSIONS
from shared.messages import BacktestSpec
from strategy_worker.backtest.data import has_contract_candles
from strategy_worker.backtest.engine import BacktestError
from strategy_worker.backtest.job import backtest_for, execute
from strategy_worker.backtest.service import BacktestService
from strategy_worker.backtest.store import BacktestStore
from tests.backtest.kit import NIFTY_TOKEN, OPTION_DAYS, seed_options
from tests.helpers import stack_settings


@pytest.fixture(scope="module")
def chain_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("chain")
    seed_options(d)
    return d


def spec(strategy="iron_condor", **kw) -> BacktestSpec:
    base = {"strategy": strategy, "symbols": ["NIFTY 50"], "start": OPTION_DAYS[0], "end": OPTION_DAYS[-1],
            "interval": "minute", "params": {"lots": 1}, "warmup_bars": 0}
    return BacktestSpec(**{**base, **kw})


@pytest.mark.parametrize("strategy,legs", [("iron_condor", 4), ("bull_call_spread", 2), ("strangle", 4)])
def test_each_structure_with_its_legs_and_pnl_adds_up_to_the_run(chain_dir, strategy, legs):
    out = execute(spec(strategy), chain_dir)
    rows, fills, m = out["parts"]["structures"], out["parts"]["fills"], out["metrics"]
    assert len(rows) == m["groups"] // 2 == 3  # one a day: an entry group, its time exit
    for s in rows:
        assert s["structure"] and s["closed"] > s["opened"] and s["ended"] == "time exit before the close"
        assert len(s["legs"]) == legs and all(leg["exit_price"] for leg in s["legs"])
        mine = [f for f in fills if s["opened_ts"] <= f["ts"] <= s["closed_ts"]]
        cash = sum((-1 if f["side"] == "BUY" else 1) * f["quantity"] * f["price"] for f in mine)
        assert (s["gross_pnl"], s["charges"]) == (cash, sum(f["charges"] for f in mine))
        assert s["net_pnl"] == cash - s["charges"]
        for leg in s["legs"]:  # a leg's prices are its own fills'
            own = [f for f in mine if f["symbol"] == leg["symbol"]]
            assert own[0]["side"] == leg["side"] and own[0]["price"] == leg["entry_price"]
            assert own[-1]["price"] == leg["exit_price"]
    assert sum(s["net_pnl"] for s in rows) == m["net_pnl"]


def test_a_structure_open_when_the_range_ends_has_no_pnl(chain_dir):
    out = execute(spec(params={"lots": 1, "exit_minute": 930}, end=OPTION_DAYS[0]), chain_dir)
    (s,) = out["parts"]["structures"]
    # 15:30 is the time exit: never reached on minute bars ending 15:29, so the condor is held over the range's end
    assert (s["closed"], s["gross_pnl"], s["net_pnl"], s["ended"]) == ("", None, None, "open when the range ended")
    assert s["charges"] > 0 and all(leg["exit_price"] is None for leg in s["legs"])


def test_structures_are_stored_and_exported(chain_dir, tmp_path):
    out = execute(spec(), chain_dir)
    store = BacktestStore(tmp_path / "backtests.db")
    store.create("r1", "DEMO01", "backtest", spec())
    store.finish("r1", out["metrics"], out["per_symbol"], out["parts"], bars=out["bars"], elapsed=0.1)
    assert store.results("r1")["structures"] == out["parts"]["structures"]
    lines = store.export("r1", "structures", "csv").splitlines()
    assert len(lines) == 4 and lines[1].count("NFO:NIFTY") == 4 and "; " in lines[1]


def test_a_store_made_before_structures_existed_takes_them(chain_dir, tmp_path):
    path = tmp_path / "backtests.db"
    BacktestStore(path).db.execute("ALTER TABLE results DROP COLUMN structures")
    store = BacktestStore(path)
    store.create("r0", "DEMO01", "backtest", spec())
    store.finish("r0", {}, {}, {"fills": []}, bars=0, elapsed=0.0)
    assert store.results("r0")["structures"] == []


@pytest.mark.parametrize("change,field,words", [
    ({"symbols": ["INFY"]}, "symbols", "no option contracts of INFY"),
    ({"interval": "day"}, "interval", "intraday bars"),
])
def test_input_an_option_strategy_cannot_run_on_names_the_field(chain_dir, change, field, words):
    with pytest.raises(BacktestError) as e:
        backtest_for(spec(**change), chain_dir)._check_data()
    assert e.value.field == field and words in str(e.value)


def underlying_only(chain_dir, data_dir) -> None:
    """The options store copied with the underlying's candles only (none of the contracts')."""
    shutil.copytree(chain_dir, data_dir, dirs_exist_ok=True)
    for series in (data_dir / "candles" / "minute").iterdir():
        if int(series.name) != NIFTY_TOKEN:
            shutil.rmtree(series)


async def test_no_contract_candles_is_refused_before_the_run(chain_dir, nats_server, bus, data_dir):
    """The service's answer to a run (what POST /api/backtests returns as a 400): the underlying's candles are there,
    none of the contracts' — named on ``start``, nothing queued."""
    assert has_contract_candles(spec(), chain_dir)
    underlying_only(chain_dir, data_dir)
    assert not has_contract_candles(spec(), data_dir)
    # no broker session (the store alone): one an earlier test left in this nats-server's KV made the service try
    # to fetch the missing contracts from that test's sim, gone by now (hung to the timeout in CI)
    with contextlib.suppress(Exception):
        await (await bus.kv(KV_BROKER_SESSIONS)).delete("DEMO01")
    service = BacktestService(bus, stack_settings(nats_server, data_dir))
    try:
        err = await service.run("DEMO01", spec())
        assert isinstance(err, m.Error) and err.field == "start" and "option contracts" in err.message, err
        assert service.store.list("DEMO01") == [] and service.pool is None
    finally:
        await service.close()


async def test_a_broker_out_of_reach_while_fetching_the_missing_candles_is_said_in_words(chain_dir, nats_server, bus,
                                                                                        data_dir):
    """The candles missing, a Kite session stored, the broker unreachable: the run is refused with the broker's
    words (503 over HTTP), not an exception the bus answers as "internal"."""
    underlying_only(chain_dir, data_dir)
    settings = stack_settings(nats_server, data_dir, kite_root=f"http://127.0.0.1:{natsd.free_port()}")
    await put_session(bus, vault_for(settings), "DEMO01", "kta-demo", "a-token")
    service = BacktestService(bus, settings)
    try:
        err = await service.run("DEMO01", spec())
        assert isinstance(err, m.Error) and err.code == "broker_unavailable" and "cannot reach" in err.message, err
        assert service.store.list("DEMO01") == [] and service.pool is None
    finally:
        await service.close()
        await (await bus.kv(KV_BROKER_SESSIONS)).delete("DEMO01")
