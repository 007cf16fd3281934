"""One backtest as a self-contained job: spec in, figures and records out. What the process pool, a Ray
task, the CLI and the tests all call, so every path runs the same code."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from shared.candles.instruments import InstrumentArchive
from shared.candles.store import CandleStore
from shared.kite.models import Instrument
from shared.messages import BacktestSpec
from strategy_worker.backtest import metrics
from strategy_worker.backtest.engine import Backtest, BacktestError, Progress
from strategy_worker.backtest.options import OptionBacktest
from strategy_worker.backtest.results import structures
from strategy_worker.strategies import registry


def candles_root(data_dir: str | Path) -> Path:
    return Path(data_dir) / "candles"


def instruments_for(data_dir: str | Path, spec: BacktestSpec) -> list[Instrument]:
    found = InstrumentArchive(candles_root(data_dir)).load(spec.start)
    if not found:
        raise BacktestError("symbols", "no instrument list stored yet: connect Kite (the strategy worker keeps a "
                                       "daily snapshot) or run `kta candles refresh`")
    return found


def is_options(spec: BacktestSpec) -> bool:
    try:
        return registry.get(spec.strategy).kind == "options"
    except registry.ParamsError:
        return False  # an unknown strategy: the engine refuses it naming the field


def backtest_for(spec: BacktestSpec, data_dir: str | Path, *, run_id: str = "bt",
                 instruments: list[Instrument] | None = None, progress: Progress | None = None,
                 cancel: threading.Event | None = None) -> Backtest:
    """The engine for ``spec``: an option strategy's reads each day's contracts from that day's snapshot
    (unless a list was given)."""
    given = instruments is not None
    instruments = instruments if given else instruments_for(data_dir, spec)
    store = CandleStore(candles_root(data_dir))
    if is_options(spec):
        archive = None if given else InstrumentArchive(candles_root(data_dir))
        return OptionBacktest(spec, instruments, store, archive=archive, run_id=run_id, progress=progress,
                              cancel=cancel)
    return Backtest(spec, instruments, store, run_id=run_id, progress=progress, cancel=cancel)


def execute(spec: BacktestSpec, data_dir: str | Path, *, run_id: str = "bt", instruments: list[Instrument] | None = None,
            progress: Progress | None = None, cancel: threading.Event | None = None,
            parts: bool = True) -> dict[str, Any]:
    """Run ``spec`` on the candle store under ``data_dir``; raises BacktestError (bad input, no data) or
    Cancelled. ``parts=False`` keeps only the figures (a sweep's trials)."""
    bt = backtest_for(spec, data_dir, run_id=run_id, instruments=instruments, progress=progress, cancel=cancel)
    rec = bt.run()
    summary = {**metrics.summary(rec, spec.capital), "unfilled_signals": bt.unfilled,
               "bars_per_second": round(rec.bars / bt.elapsed) if bt.elapsed else None}
    out: dict[str, Any] = {"metrics": summary, "per_symbol": metrics.per_symbol(rec), "bars": rec.bars,
                           "elapsed": bt.elapsed}
    if parts:
        out["parts"] = {"curve": rec.curve, "daily": rec.daily, "orders": rec.orders, "trades": rec.trades,
                        "fills": rec.fills, "refusals": list(rec.refusals), "structures": structures(rec)}
    return out
