"""Backtests as a service of the strategy worker: ``kta.u.<user>.cmd.backtest.*`` (run, sweep, cancel, get,
list), progress on ``kta.u.<user>.backtests``.

A run executes in a separate process (a spawn pool of ``KTA_BACKTEST_WORKERS`` processes, one by
default), so a backtest never holds up the worker's event loop and the live ticks it serves. The job's
progress comes back through a queue and is published as ``BacktestProgress``; cancelling sets the job's
event, the engine stops at its next check, and nothing of the run is stored but its state. Missing
candles are fetched first through the user's own Kite session (``data.ensure``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from shared import messages as m
from shared import subjects
from shared.bus import Bus
from shared.config import Settings
from shared import ist
from shared.candles.instruments import InstrumentArchive
from shared.kite import errors as kite_errors
from shared.kite.clients import KiteClients, NotConnected
from shared.broker_sessions import SessionStoreUnavailable
from shared.kite.instruments import InstrumentCache
from strategy_worker.backtest import data, engine, parallel
from strategy_worker.backtest.job import backtest_for, candles_root, is_options
from strategy_worker.backtest.store import BacktestStore
from strategy_worker.backtest.sweep import Sweep

log = logging.getLogger("kta.backtest")


def _job(spec_json: bytes, data_dir: str, run_id: str, progress: Any, cancel: Any) -> dict[str, Any]:
    """In the pool's process: the run, its progress put on ``progress``, its results stored at the end."""
    import msgspec

    from strategy_worker.backtest.job import execute

    spec = msgspec.json.decode(spec_json, type=m.BacktestSpec)
    out = execute(spec, data_dir, run_id=run_id, cancel=cancel,
                  progress=lambda done, bars: progress.put((run_id, done, bars)))
    BacktestStore(f"{data_dir}/backtests.db").finish(run_id, out["metrics"], out["per_symbol"], out["parts"],
                                                     bars=out["bars"], elapsed=out["elapsed"])
    return {"bars": out["bars"], "net_pnl": out["metrics"]["net_pnl"]}


def chart_bars(data_dir, spec: m.BacktestSpec, points: int = 1500) -> dict[str, list[list]]:
    """Each symbol's bars over the run, merged into at most ``points`` OHLC bars: [ts, o, h, l, c]."""
    import numpy as np

    from shared.candles.store import CandleStore, day_bounds
    from strategy_worker.backtest.job import instruments_for

    store = CandleStore(data_dir / "candles")
    setup = engine.resolve(spec, instruments_for(data_dir, spec), "chart", "CHART")
    start, end = day_bounds(spec.start, spec.end)
    out = {}
    for token in setup.tokens:
        c = store.read(token, spec.interval, start, end)
        if not len(c):
            continue
        k = max(1, -(-len(c) // points))
        idx = np.arange(0, len(c), k)
        high = np.maximum.reduceat(c.high, idx)
        low = np.minimum.reduceat(c.low, idx)
        close = c.close[np.minimum(idx + k, len(c)) - 1]
        inst = setup.instruments[token]
        out[f"{inst.exchange}:{inst.tradingsymbol}"] = [
            [int(t), float(o), float(h), float(lo), float(cl)]
            for t, o, h, lo, cl in zip(c.ts[idx], c.open[idx], high, low, close)]
    return out


class BacktestService:
    def __init__(self, bus: Bus, settings: Settings, workers: int | None = None,
                 clients: KiteClients | None = None) -> None:
        self.bus = bus
        self.settings = settings
        self.clients = clients or KiteClients(bus, settings)  # the strategy worker's: one client per user
        self._own_clients = clients is None
        self.store = BacktestStore(settings.data_path / "backtests.db")
        self.workers = workers or settings.backtest_workers
        self.cancels: dict[str, Any] = {}  # run id -> the job's event
        self.owner: dict[str, str] = {}  # run id -> user id
        self.pool: ProcessPoolExecutor | None = None  # started with the first run, not with the worker
        self._pump: asyncio.Task | None = None
        self._snapshots: set = set()  # days whose instrument snapshot is taken (or being written)

    async def start(self, accept=None) -> BacktestService:
        self.clients.instruments.on_load.append(self._snapshot)
        await self.bus.serve(subjects.cmd_wildcard("backtest"), self.on_command, accept=accept)
        return self

    def _snapshot(self, cache: InstrumentCache) -> None:
        """Each day's first instrument list is kept as that day's snapshot, so an options backtest of the day
        later finds its contracts (expired ones leave Kite's dump); written off the event loop."""
        day = ist.now(cache.loaded_at).date()
        archive = InstrumentArchive(candles_root(self.settings.data_path))
        if day in self._snapshots or archive.has(day):
            return
        self._snapshots.add(day)
        done = asyncio.get_running_loop().run_in_executor(None, archive.save, day, cache.rows)
        done.add_done_callback(lambda f: f.exception() and log.warning("instrument snapshot of %s not saved: %r",
                                                                       day, f.exception()))

    def _start_pool(self) -> None:
        if self.pool is None:
            ctx = parallel.processes()
            self.manager = ctx.Manager()
            self.progress = self.manager.Queue()
            self.pool = ProcessPoolExecutor(self.workers, mp_context=ctx)
            self._pump = asyncio.create_task(self._relay(), name="backtest-progress")

    async def close(self) -> None:
        for ev in self.cancels.values():
            ev.set()
        if self._own_clients:
            await self.clients.close()
        if self.pool is None:
            return
        self._pump.cancel()
        await asyncio.to_thread(self.pool.shutdown, True, cancel_futures=True)
        self.manager.shutdown()

    # ---- commands -----------------------------------------------------------------------------

    async def on_command(self, cmd, user_id: str, msg) -> m.Ok | m.Error:
        if isinstance(cmd, m.RunBacktest):
            return await self.run(user_id, cmd.spec)
        if isinstance(cmd, m.RunSweep):
            return await self.sweep(user_id, cmd.spec)
        if isinstance(cmd, m.CancelBacktest):
            return self.cancel(user_id, cmd.id)
        if isinstance(cmd, m.GetBacktest):
            return self.get(user_id, cmd)
        if isinstance(cmd, m.ListBacktests):
            return m.Ok(data=self.store.list(user_id, cmd.limit))
        return m.Error(code="unsupported", message=f"{type(cmd).__name__} is not a backtest command")

    async def _prepare(self, user_id: str, spec: m.BacktestSpec) -> m.Error | None:
        """Fetch what is missing, then check the spec against the data (the 4xx cases)."""
        try:
            with contextlib.suppress(NotConnected, SessionStoreUnavailable):  # without a session: the data stored
                await data.ensure(await self.clients.client(user_id), self.settings.data_path, spec)
            backtest_for(spec, self.settings.data_path)._check_data()
            if is_options(spec) and not await asyncio.to_thread(data.has_contract_candles, spec,
                                                                 self.settings.data_path):
                names = ", ".join(spec.symbols)
                raise engine.BacktestError("start", f"no {spec.interval} candles of the {names} option contracts "
                                                    f"the strategy would trade from {spec.start} to {spec.end}: "
                                                    "kta backtest --fetch stores them while Kite lists the "
                                                    "contracts (expired ones only from a CSV import)")
        except engine.BacktestError as e:
            return m.Error(code="bad_params", message=str(e), field=e.field)
        except kite_errors.KiteError as e:  # fetching what is missing: the broker's own words, never "internal"
            code = "broker_unavailable" if isinstance(e, kite_errors.NetworkException) else "broker_error"
            return m.Error(code=code, message=f"fetching the missing candles from Kite: {e.message}")
        return None

    async def run(self, user_id: str, spec: m.BacktestSpec) -> m.Ok | m.Error:
        err = await self._prepare(user_id, spec)
        if err is not None:
            return err
        run_id = uuid.uuid4().hex[:12]
        self.store.create(run_id, user_id, "backtest", spec, name=spec.name)
        self._start_pool()
        cancel = self.manager.Event()
        self.cancels[run_id], self.owner[run_id] = cancel, user_id
        import msgspec

        future = self.pool.submit(_job, msgspec.json.encode(spec), str(self.settings.data_path), run_id,
                                  self.progress, cancel)
        self.bus.spawn(self._watch(user_id, run_id, asyncio.wrap_future(future)), name=f"backtest:{run_id}")
        await self._publish(user_id, run_id, "queued")
        return m.Ok(data={"backtest_id": run_id})

    async def sweep(self, user_id: str, spec: m.SweepSpec) -> m.Ok | m.Error:
        err = await self._prepare(user_id, spec.base)
        if err is not None:
            return err
        run_id = uuid.uuid4().hex[:12]
        self.store.create(run_id, user_id, "sweep", spec, name=spec.base.name)
        self._start_pool()
        cancel = threading.Event()
        self.cancels[run_id], self.owner[run_id] = cancel, user_id
        loop = asyncio.get_running_loop()

        def work() -> dict[str, Any]:
            pool = parallel.LocalPool(self.settings.data_path, self.workers, executor=self.pool)
            try:
                return Sweep(spec, pool, cancel=cancel, progress=lambda done, what: self.progress.put(
                    (run_id, done, 0))).run()
            finally:
                pool.close()

        self.bus.spawn(self._watch(user_id, run_id, loop.run_in_executor(None, work), sweep=True),
                       name=f"sweep:{run_id}")
        await self._publish(user_id, run_id, "queued", kind="sweep")
        return m.Ok(data={"backtest_id": run_id})

    def cancel(self, user_id: str, run_id: str) -> m.Ok | m.Error:
        if self.owner.get(run_id) != user_id:
            row = self.store.get(run_id, user_id)
            if row is None:
                return m.Error(code="not_found", message=f"no backtest {run_id}", field="id")
            return m.Error(code="bad_request", message=f"backtest {run_id} is {row['state']}", field="id")
        self.cancels[run_id].set()
        return m.Ok(data={"backtest_id": run_id, "state": "cancelling"})

    def get(self, user_id: str, cmd: m.GetBacktest) -> m.Ok | m.Error:
        row = self.store.get(cmd.id, user_id)
        if row is None:
            return m.Error(code="not_found", message=f"no backtest {cmd.id}", field="id")
        if cmd.export:
            if row["state"] != "done":
                return m.Error(code="bad_request", message=f"backtest {cmd.id} is {row['state']}", field="id")
            return m.Ok(data={"content_type": "text/csv" if cmd.format == "csv" else "application/json",
                              "text": self.store.export(cmd.id, cmd.export, cmd.format)})
        if row["kind"] == "backtest" and row["state"] == "done":
            row["results"] = self.store.results(cmd.id)
            if cmd.chart:
                row["chart"] = chart_bars(self.settings.data_path, self.store.spec(cmd.id))
        return m.Ok(data=row)

    # ---- jobs ---------------------------------------------------------------------------------

    async def _watch(self, user_id: str, run_id: str, future, sweep: bool = False) -> None:
        kind = "sweep" if sweep else "backtest"
        try:
            result = await future
        except engine.Cancelled:
            self.store.set_state(run_id, "cancelled")
            await self._publish(user_id, run_id, "cancelled", kind=kind)
        except Exception as e:  # noqa: BLE001 - a failed run is recorded and reported, the worker goes on
            log.warning("backtest %s failed: %r", run_id, e, extra={"user_id": user_id})
            self.store.set_state(run_id, "failed", error=f"{type(e).__name__}: {e}")
            await self._publish(user_id, run_id, "failed", message=str(e), kind=kind)
        else:
            if sweep:
                self.store.finish_sweep(run_id, result)
            await self._publish(user_id, run_id, "done", done=1.0, kind=kind)
        finally:
            self.cancels.pop(run_id, None)
            self.owner.pop(run_id, None)

    async def _relay(self) -> None:
        """Progress from the job processes to NATS (at most a few a second per run)."""
        last: dict[str, float] = {}
        while True:
            try:
                run_id, done, bars = await asyncio.to_thread(self.progress.get, True, 0.5)
            except queue.Empty:
                continue
            except (EOFError, OSError):
                return
            user_id = self.owner.get(run_id)
            now = time.monotonic()
            if user_id is None or (done < 1 and now - last.get(run_id, 0) < 0.2):
                continue
            last[run_id] = now
            if self.store.progress(run_id, done, bars or None):  # not when the run has already ended
                await self._publish(user_id, run_id, "running", done=done, bars=bars)

    async def _publish(self, user_id: str, run_id: str, state: str, *, done: float = 0.0, bars: int = 0,
                       message: str = "", kind: str = "backtest") -> None:
        await self.bus.publish(subjects.backtests(user_id), m.BacktestProgress(
            user_id=user_id, backtest_id=run_id, kind=kind, state=state, done=round(done, 4), bars=bars,
            message=message, ts=time.time_ns()))
