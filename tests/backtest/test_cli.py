"""``kta backtest`` and ``kta candles`` as a trader runs them: a summary table, the run kept and exported, a
sweep's in-sample / out-of-sample table, a bad symbol named with a non-zero exit, a CSV import."""

from __future__ import annotations

import csv
import os
import subprocess
from pathlib import Path

import pytest

from shared import natsd
from strategy_worker.backtest.store import BacktestStore
from tests import simfork
from tests.backtest.kit import INFY, seed_store, write_replay_csv

pytestmark = pytest.mark.slow(seconds=50)

ROOT = Path(__file__).resolve().parents[2]


def kta(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("KTA_")}, "PYTHONPATH": str(ROOT),
           "KTA_NATS_URL": f"nats://127.0.0.1:{natsd.free_port()}"}  # no stack running: the store is all there is
    return simfork.run("kta", ["--data-dir", str(data_dir), *args], cwd=ROOT, env=env, timeout=180)


def test_backtest_sweep_and_a_bad_symbol(tmp_path):
    days = seed_store(tmp_path, days=4)
    common = ["--strategy", "ema_crossover", "--symbols", "INFY,TCS", "--from", str(days[1]), "--to", str(days[-1]),
              "--interval", "minute", "--param", "fast=5", "--param", "slow=20", "--warmup-bars", "50"]
    out = kta(tmp_path, "backtest", *common, "--export", str(tmp_path / "trades.csv"))
    assert out.returncode == 0, out.stderr
    assert "net P&L" in out.stdout and "Sharpe" in out.stdout and "NSE:TCS" in out.stdout
    assert "stack is not running" in out.stderr and "backtest [" in out.stderr  # the note and the progress bar
    [run] = BacktestStore(tmp_path / "backtests.db").list("DEMO01")
    with open(tmp_path / "trades.csv") as f:
        rows = list(csv.DictReader(f))
    assert run["state"] == "done" and len(rows) == run["metrics"]["trades"] > 0

    sweep = kta(tmp_path, "backtest", *common[:-4], "--sweep", "fast=5,8", "--sweep", "slow=20", "--workers", "1")
    assert sweep.returncode == 0, sweep.stderr
    assert "grid sweep, objective sharpe, 2 trials" in sweep.stdout and "out-of-sample" in sweep.stdout

    bad = kta(tmp_path, "backtest", *common[:3], "NOSUCH", *common[4:])
    assert bad.returncode == 2 and "symbols" in bad.stderr and "NOSUCH" in bad.stderr


def test_candles_import(tmp_path):
    days = seed_store(tmp_path, days=1)
    csv_path = write_replay_csv(tmp_path / "more.csv", {INFY.instrument_token: "INFY"}, days, seed=9)
    imported = kta(tmp_path, "candles", "import", str(csv_path), "--interval", "3minute")
    assert imported.returncode == 0 and "INFY: 375 candles" in imported.stdout, imported.stderr
