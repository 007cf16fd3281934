"""Where a sweep's trials run: this machine's cores (a process pool, the default) or a Ray cluster
(``--ray ADDRESS``). A trial never raises: a bad parameter set or a failing run comes back as an error
record and the sweep goes on.

On Ray the trials may run on machines without this data directory, so the driver ships what they read
— the Parquet month files of the instruments involved and the instrument snapshot — once, through Ray's
object store; each worker process unpacks it into a temporary candle store and reuses it."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any

import msgspec

from shared.messages import BacktestSpec

_UNPACKED: dict[str, str] = {}  # bundle digest -> data dir, per Ray worker process


def trial(spec_json: bytes, data_dir: str) -> dict[str, Any]:
    """One backtest's figures (no records), or its error."""
    from strategy_worker.backtest.engine import BacktestError
    from strategy_worker.backtest.job import execute

    try:
        spec = msgspec.json.decode(spec_json, type=BacktestSpec)
        out = execute(spec, data_dir, parts=False)
        return {"ok": True, "metrics": out["metrics"], "bars": out["bars"], "elapsed": out["elapsed"]}
    except BacktestError as e:
        return {"ok": False, "error": str(e), "field": e.field}
    except Exception as e:  # noqa: BLE001 - one failing run is recorded, the sweep goes on
        return {"ok": False, "error": f"{type(e).__name__}: {e}", "field": None}


def processes() -> BaseContext:
    """How a backtest's processes start (a job's, a sweep's trials'): forked from multiprocessing's fork
    server, a clean interpreter (started by spawn: never a fork of an event loop with live connections) that
    has imported the engine once, instead of each spawned process importing it again (~1.5 CPU-s each)."""
    ctx = get_context("forkserver")
    ctx.set_forkserver_preload(["strategy_worker.backtest.service"])  # the jobs', and with it the trials' code
    return ctx


class LocalPool:
    """Trials on this machine's cores, each in its own process (:func:`processes`)."""

    def __init__(self, data_dir: str | Path, workers: int | None = None,
                 executor: ProcessPoolExecutor | None = None) -> None:
        self.data_dir = str(data_dir)
        self.workers = max(1, workers or (os.cpu_count() or 1))
        self.owned = executor is None  # a pool lent by the caller (the worker's warm one) is not shut down
        self.pool = executor or ProcessPoolExecutor(self.workers, mp_context=processes())

    def map(self, specs: Iterable[BacktestSpec]) -> Iterator[tuple[int, dict[str, Any]]]:
        futures = {self.pool.submit(trial, msgspec.json.encode(s), self.data_dir): i for i, s in enumerate(specs)}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    yield futures[f], f.result()
        finally:  # a cancelled sweep: the trials not started yet never start
            for f in pending:
                f.cancel()

    def close(self) -> None:
        if self.owned:
            self.pool.shutdown(wait=True, cancel_futures=True)


def pack(data_dir: str | Path, tokens: Iterable[int], interval: str) -> dict[str, bytes]:
    """The files trials of these instruments read: relative path -> bytes."""
    root = Path(data_dir) / "candles"
    files = {}
    for t in tokens:
        for p in (root / interval / str(t)).glob("*.parquet"):
            files[str(p.relative_to(root))] = p.read_bytes()
    for p in (root / "instruments").glob("*.parquet"):
        files[str(p.relative_to(root))] = p.read_bytes()
    return files


def _unpacked(bundle: dict[str, bytes]) -> str:
    digest = hashlib.sha256(b"".join(k.encode() + hashlib.sha256(v).digest() for k, v in sorted(bundle.items())))
    key = digest.hexdigest()
    if key not in _UNPACKED:
        data_dir = tempfile.mkdtemp(prefix="kta-bt-")
        for rel, data in bundle.items():
            path = Path(data_dir) / "candles" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        _UNPACKED[key] = data_dir
    return _UNPACKED[key]


def _ray_trial(bundle: dict[str, bytes], spec_json: bytes) -> dict[str, Any]:
    return trial(spec_json, _unpacked(bundle))


class RayPool:
    """Trials as Ray tasks on the cluster at ``address`` (``ray start --head`` prints it)."""

    def __init__(self, address: str, data_dir: str | Path, tokens: Iterable[int], interval: str) -> None:
        import ray

        self.ray = ray
        if not ray.is_initialized():
            ray.init(address=address, log_to_driver=False, include_dashboard=False)
        self.bundle = ray.put(pack(data_dir, tokens, interval))
        self.remote = ray.remote(_ray_trial)
        self.workers = int(ray.cluster_resources().get("CPU", 1))

    def map(self, specs: Iterable[BacktestSpec]) -> Iterator[tuple[int, dict[str, Any]]]:
        refs = {self.remote.remote(self.bundle, msgspec.json.encode(s)): i for i, s in enumerate(specs)}
        pending = list(refs)
        try:
            while pending:
                done, pending = self.ray.wait(pending, num_returns=1)
                for ref in done:
                    yield refs[ref], self.ray.get(ref)
        finally:
            for ref in pending:
                self.ray.cancel(ref)

    def close(self) -> None:
        self.ray.shutdown()
