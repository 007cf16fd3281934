"""The run store: a progress report that arrives after a run ended (the job process reports through a queue the
service drains on its own time) leaves the run as it ended; it used to turn a finished run back into 'running'."""

from __future__ import annotations

from shared.messages import BacktestSpec
from strategy_worker.backtest.store import BacktestStore
from tests.backtest.kit import START


def test_a_late_progress_report_leaves_a_finished_run_finished(tmp_path):
    store = BacktestStore(tmp_path / "backtests.db")
    spec = BacktestSpec(strategy="ema_crossover", symbols=["INFY"], start=START, end=START, interval="minute")
    for run_id, end in (("r1", "done"), ("r2", "cancelled"), ("r3", "failed")):
        store.create(run_id, "DEMO01", "backtest", spec)
        assert store.progress(run_id, 0.5, 100)
        assert (store.get(run_id)["state"], store.get(run_id)["done"]) == ("running", 0.5)
        if end == "done":
            store.finish(run_id, {}, {}, {}, bars=200, elapsed=1.0)
        else:
            store.set_state(run_id, end)
        assert not store.progress(run_id, 0.9, 180)
        row = store.get(run_id, "DEMO01")
        assert (row["state"], row["bars"]) == (end, 200 if end == "done" else 100)
