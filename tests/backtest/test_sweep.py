"""Sweeps and walk-forward: grid and Optuna searches scored in and out of sample, a failing trial recorded,
the same figures on this machine's process pool and on a Ray cluster (a head started here on loopback)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

import pytest

from shared import natsd
from shared.messages import BacktestSpec, SweepSpec
from strategy_worker.backtest.parallel import LocalPool, RayPool
from strategy_worker.backtest.sweep import Sweep, combinations, windows
from tests.backtest.kit import seed_store
from tests.helpers import eventually_blocking

pytestmark = pytest.mark.slow(seconds=22)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("sweep")
    return d, seed_store(d, days=6)


@pytest.fixture(scope="module")
def pool(data):
    """One pool of this machine's processes for the module's sweeps (starting one costs processes forked from
    the fork server, which imports the engine once)."""
    local = LocalPool(data[0], workers=2)
    yield local
    local.close()


def sweep_spec(days, **kw) -> SweepSpec:
    base = BacktestSpec(strategy="ema_crossover", symbols=["INFY"], start=days[1], end=days[-1], interval="minute",
                        params={"quantity": 10}, warmup_bars=50)
    return SweepSpec(**{"base": base, "grid": {"fast": [5, 8, 40], "slow": [20, 30]}, "in_sample": 0.6, **kw})


def test_windows_and_grid():
    assert windows(date(2025, 1, 1), date(2025, 1, 10), 1, 0.7) == [
        (date(2025, 1, 1), date(2025, 1, 7), date(2025, 1, 8), date(2025, 1, 10))]
    w = windows(date(2025, 1, 1), date(2025, 1, 20), 2, 0.5)
    assert [x[0] for x in w] == [date(2025, 1, 1), date(2025, 1, 11)] and w[1][3] == date(2025, 1, 20)
    assert all(a <= b < c <= d for a, b, c, d in w)
    assert len(combinations({"fast": [1, 2, 3], "slow": [4, 5]})) == 6


def test_trials_run_in_processes_forked_from_the_fork_server(pool):
    """Not spawned by the worker (each spawned interpreter imported the engine again): their parent is the
    fork server that imported it once."""
    parents = {pool.pool.submit(os.getppid).result() for _ in range(4)}
    assert os.getpid() not in parents and len(parents) == 1


def test_walk_forward_on_local_cores(data, pool):
    d, days = data
    report = Sweep(sweep_spec(days, windows=2), pool).run()
    assert report["trial_count"] == 12  # 6 combinations × 2 windows
    bad = [t for t in report["trials"] if not t["ok"]]
    assert len(bad) == 4 and all(t["params"]["fast"] == 40 and t["field"] == "params.fast" for t in bad)
    for w in report["windows"]:
        assert w["trials"] == 6 and w["failed"] == 2 and w["params"]["fast"] in (5, 8)
        assert w["is_score"] is not None and w["oos_metrics"]["bars"] > 0  # out of sample beside in sample
        assert w["in_sample"][1] < w["out_of_sample"][0]
    assert report["oos_score"] is not None or all(w["oos_score"] == float("-inf") for w in report["windows"])


def test_optuna_is_seeded(data, pool):
    d, days = data
    runs = [Sweep(sweep_spec(days, method="optuna", trials=5, seed=3), pool).run() for _ in range(2)]
    assert runs[0]["trial_count"] == 5
    assert [t["params"] for t in runs[0]["trials"]] == [t["params"] for t in runs[1]["trials"]]


def test_ray_cluster_gives_the_same_figures(data, pool, monkeypatch):
    d, days = data
    port = natsd.free_port()
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    # Ray resolves 127.0.0.1 to the host's routable address unless told it is not a cluster of machines:
    # with this, the head, its workers and the driver all stay on loopback
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    head, ray_pool = None, None
    try:
        for attempt in (1, 2):  # a head whose own processes die starting up on a loaded machine: once more, said why
            port = port if attempt == 1 else natsd.free_port()
            head = ray_head(temp, port)
            try:
                natsd.wait_port("127.0.0.1", port, timeout=90, proc=head)
                ray_pool = eventually_blocking(lambda: joined(f"127.0.0.1:{port}", d, head), 90, "the Ray head's node", 0.5)
                break
            except (AssertionError, TimeoutError, RuntimeError) as e:
                exited, log = head.poll(), (Path(temp) / "head.log").read_text(errors="replace")[-3000:]
                stop_group(head)
                if attempt == 2 or exited is None:
                    raise AssertionError(f"the Ray head did not start ({e}; exit {exited}):\n{log}") from None
                print(f"the Ray head exited with {exited} starting up; again. Its log:\n{log}")
        spec = sweep_spec(days, grid={"fast": [5, 8], "slow": [20]})
        try:
            on_ray = Sweep(spec, ray_pool).run()
        finally:
            ray_pool.close()
        local = Sweep(spec, pool).run()
        strip = lambda r: [(t["params"], t["metrics"]["net_pnl"], t["metrics"]["trades"]) for t in r["trials"]]  # noqa: E731
        assert sorted(strip(on_ray), key=str) == sorted(strip(local), key=str)
        assert on_ray["windows"][0]["params"] == local["windows"][0]["params"]
    finally:
        if head is not None:
            stop_group(head)
        shutil.rmtree(temp, ignore_errors=True)


def ray_head(temp: str, port: int) -> subprocess.Popen:
    """``ray start --head`` on loopback in its own process group, its output in ``temp``/head.log."""
    with open(Path(temp) / "head.log", "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
                                 "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=1",
                                 "--include-dashboard=false", f"--temp-dir={temp}", "--disable-usage-stats"],
                                env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def joined(address: str, data_dir, head: subprocess.Popen) -> RayPool | None:
    """A pool on the cluster, or None while the head's own node has not registered yet: the head's port
    listens before its raylet joins, and a driver connecting then is refused ("No node info found matching
    attributes") — seen in a CI run at load 20."""
    assert head.poll() is None, f"the Ray head exited with {head.returncode}"
    try:
        return RayPool(address, data_dir, [408065], "minute")
    except (ConnectionError, RuntimeError) as e:
        import ray

        ray.shutdown()
        if "No node info" in str(e) or "Failed to connect" in str(e):
            return None
        raise


def stop_group(proc: subprocess.Popen) -> None:
    """The head and everything it started (its own process group), nothing else. SIGKILL: on SIGTERM a
    head drains its node for up to 30 s, which a throw-away test cluster does not need."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
