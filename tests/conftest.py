"""Fixtures every test builds on: a real nats-server with JetStream on a free port, a connected
bus, temp data dirs, the official Kite mocks and Chromium when the machine has them. Nothing here is
mocked. Each xdist worker has its own session, so its own nats-server; kite_sim is one per test
package (``sim``), never one process whose prices and faults every suite mutates."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import hypothesis
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shared import natsd  # noqa: E402
from shared.bus import Bus  # noqa: E402
from shared.natsauth import AuthDir  # noqa: E402
from tests import helpers  # noqa: E402

# Tests never time themselves: Hypothesis' default 200 ms deadline per example failed a pure-arithmetic property
# (0.16 ms alone) at 386 ms when the CI machine was loaded, as a "FlakyFailure".
hypothesis.settings.register_profile("kta", deadline=None)
hypothesis.settings.load_profile("kta")

# The suite must never read the developer's own settings.
for _k in [k for k in os.environ if k.startswith("KTA_")]:
    del os.environ[_k]


if helpers.EVENT_LOOP == "uvloop":
    @pytest.fixture(scope="session")
    def event_loop_policy():
        import uvloop

        return uvloop.EventLoopPolicy()


def pytest_configure(config):
    from tests import rewrite_cache, simfork

    if rewrite_cache.wanted(config):
        rewrite_cache.write(config)
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput"):
        simfork.serve_workers()  # the xdist controller: one sim fork server for all its workers


def pytest_collection_modifyitems(config, items):
    """The longest modules first. ``--dist loadscope --no-loadscope-reorder`` (the README's command)
    hands whole modules to the xdist workers in this order, so the long ones start at once and the
    short ones fill in behind them, instead of a long one starting last and running alone. A module says
    how long it takes alone with ``pytestmark = pytest.mark.slow(seconds=...)``."""
    def seconds(item) -> float:
        mark = item.get_closest_marker("slow")
        return float(mark.kwargs.get("seconds", 30)) if mark else 0.0

    weight: dict[str, float] = {}
    for item in items:
        weight[item.nodeid.split("::")[0]] = max(weight.get(item.nodeid.split("::")[0], 0.0), seconds(item))
    items.sort(key=lambda item: -weight[item.nodeid.split("::")[0]])  # stable: a module's tests keep their order


@pytest.fixture(scope="session")
def nats_auth(tmp_path_factory) -> AuthDir:
    """The session's NATS identities (shared/natsauth.py), as ``kta up`` generates them."""
    return AuthDir.ensure(tmp_path_factory.mktemp("nats-auth"))


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory, nats_auth):
    """A real nats-server (JetStream on, authentication and the permission table enforced, as in
    production) for the whole session; yields its URL. Workers started with ``stack_settings``
    connect as their own identity; the ``bus`` fixture as ``admin``."""
    port = natsd.free_port()
    store = tmp_path_factory.mktemp("jetstream")
    proc = natsd.start(port, store, auth=nats_auth)
    url = f"nats://127.0.0.1:{port}"
    helpers.NATS_CREDS[url] = str(nats_auth.path)
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def nats_janitor(nats_server, nats_auth):
    from tests.natsstate import Janitor

    janitor = Janitor(nats_server, str(nats_auth.creds_path("admin")))
    yield janitor
    janitor.close()


@pytest.fixture(autouse=True)
def _nothing_restored_from_another_test(request):
    """After every test that used NATS, the KV state workers restore at start is emptied and the work
    streams purged (tests/natsstate.py): a ticker started by the next test must not subscribe what this one
    left, nor its execution worker act on this one's unconsumed signals, order updates or outcomes. (No
    fixture keeps workers running across tests, so nothing is consuming when this runs.)"""
    janitor = request.getfixturevalue("nats_janitor") if "nats_server" in request.fixturenames else None
    yield
    if janitor is not None:
        janitor.empty()


@pytest.fixture
def nats_url(nats_server):
    return nats_server


@pytest.fixture
async def bus(nats_server, nats_auth):
    b = await Bus.connect(nats_server, "test", creds=str(nats_auth.creds_path("admin")))
    await b.ensure_streams()
    yield b
    await b.close()


@pytest.fixture
def data_dir(tmp_path):
    d = tmp_path / "var"
    d.mkdir()
    return d


@pytest.fixture
def free_port():
    return natsd.free_port


@pytest.fixture(scope="session")
def _package_sims():
    """package name -> its kite_sim, started on first use and stopped at the end of the session."""
    sims: dict = {}
    yield sims
    for s in sims.values():
        s.stop()


@pytest.fixture(scope="module")
def sim(request, _package_sims, tmp_path_factory):
    """A real kite_sim process (fast market clock, admin API on) of the test's package: the package's
    tests share it (and reset what they change); no other package's tests see its prices or faults.
    Each module starts on a reset sim (``/sim/reset``: accounts afresh, faults off, prices released), so
    in the full suite it sees what it sees alone, not the orders and positions an earlier module left."""
    from tests.simkit import start_sim

    package = request.module.__name__.rpartition(".")[0]
    if package not in _package_sims:
        _package_sims[package] = start_sim(tmp_path_factory.mktemp(f"sim-{package.replace('.', '-')}"), speed=60.0)
    else:
        _package_sims[package].check_running()
        _package_sims[package].admin("reset")
    return _package_sims[package]


def _checkouts() -> list[Path]:
    """This checkout and, for a linked git worktree, the main checkout it belongs to."""
    found = [ROOT]
    dot_git = ROOT / ".git"
    if dot_git.is_file():  # "gitdir: <main>/.git/worktrees/<name>"
        gitdir = Path(dot_git.read_text().split("gitdir:", 1)[1].strip())
        common = gitdir / (gitdir / "commondir").read_text().strip() if (gitdir / "commondir").exists() else gitdir
        found.append(common.resolve().parent)
    return found


@pytest.fixture(scope="session")
def kite_mocks() -> Path:
    """Zerodha's official Kite Connect mock responses, in the project's shared/ folder beside the
    checkout (as CI lays it out); the test is skipped, saying so, on a checkout without it."""
    for checkout in _checkouts():
        mocks = checkout.parent / "shared" / "reference" / "kiteconnect-mocks"
        if mocks.is_dir():
            return mocks
    pytest.skip(f"the official Kite mocks are absent: no shared/reference/kiteconnect-mocks beside {ROOT}")


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's Chromium for Playwright (never ``playwright install``); skipped when not installed
    (.ci/run installs it, so CI always runs the browser tests)."""
    path = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if path is None:
        pytest.skip("Chromium is not installed (apt-get install chromium); .ci/run installs it")
    return path


def pytest_unconfigure(config):
    """This process's sim fork server (tests/simfork.py), if it owns one, stops after the session's sims
    (an xdist controller's after its workers) and is reaped here: its CPU and its sims' count as this
    process's children's, as the sims' did when each was a Popen."""
    from tests import simfork

    simfork.shutdown()
