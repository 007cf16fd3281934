"""The execution worker's test stack: a real nats-server, the session's kite_sim and the worker
running in this event loop against a data dir, with DEMO01's broker session in KV."""

import contextlib

import pytest

from execution_worker.journal import Journal
from execution_worker.main import amain as execution_main
from shared.kite.client import KiteClient
from shared.broker_sessions import put_session, vault_for
from shared.kite.budget import SharedBudget
from shared import messages as m
from shared import subjects
from tests.execution_worker.kit import USER
from tests.helpers import running, stack_settings, wait_health
from tests.simkit import PINNED, login, start_sim


@contextlib.asynccontextmanager
async def make_stack(bus, sim, data_dir, fresh_account: bool = True, before=None, amain=execution_main, **overrides):
    """The worker for the block's duration; yields (settings, journal, a KiteClient of DEMO01). The
    package's tests share one kite_sim: a fresh journal starts on a fresh account (one that never
    traded), else the worker would adopt what earlier tests left there; a restart on the same data
    dir passes ``fresh_account=False``. ``before(settings)`` is awaited just before the worker starts; ``amain``
    runs it (a test that needs the worker object passes its own start)."""
    sim.reset_faults()
    if fresh_account:
        sim.admin("accounts/reset", {"user_id": USER})
    sim.admin("price", {"underlying": "INFY", "price": 1500.0})
    sim.admin("price", {"underlying": "NIFTY", "price": 26000.0})
    settings = stack_settings(bus.nc.connected_url.geturl(), data_dir, sim, **{
        "group_fill_timeout": 3.0, "reconcile_interval": 1.0, "positions_interval": 1.0, **overrides})
    token = login(sim)
    await put_session(bus, vault_for(settings), USER, sim.api_key, token)
    kite = KiteClient(sim.api_key, token, root=sim.root, rate_limiter=SharedBudget(bus, sim.api_key))  # the worker's budget
    try:
        if before is not None:
            await before(settings)
        async with running(amain, settings):
            await wait_health(bus, "execution")
            yield settings, Journal(data_dir / "journal.db"), kite
    finally:
        await kite.aclose()
        sim.reset_faults()
        sim.admin("price", {"underlying": "INFY", "price": None})
        sim.admin("price", {"underlying": "NIFTY", "price": None})


@contextlib.asynccontextmanager
async def opened_desk(bus, sim, data_dir):
    """``make_stack`` with the user's desk opened by a positions request (its first pass closes a finished
    day and raises its report); yields (settings, journal, kite, the user's alerts since before the start)."""
    alerts: list[m.Alert] = []

    async def on_alert(a, msg):
        alerts.append(a)

    await bus.subscribe(subjects.alerts(USER), m.Alert, on_alert)
    async with make_stack(bus, sim, data_dir) as (settings, journal, kite):
        await bus.request(subjects.cmd(USER, "execution", "positions"), m.GetPositions(), timeout=30)
        yield settings, journal, kite, alerts


@pytest.fixture(scope="package")
def settling_sim(tmp_path_factory):
    """A kite_sim of its own with end-of-day settlement (``--settle``): the tests that cross a trading day
    (MIS square-off, expiry, carried positions) move its clock, which the package's shared sim keeps."""
    s = start_sim(tmp_path_factory.mktemp("sim-settle"), seed=23, extra=("--settle",))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def expiry_sim(tmp_path_factory):
    """``settling_sim`` opening on a weekly expiry day (``simkit.EXPIRY_DAY``), whatever today's date."""
    s = start_sim(tmp_path_factory.mktemp("sim-expiry"), seed=23, extra=("--settle", *PINNED))
    yield s
    s.stop()


@pytest.fixture
async def stack(bus, sim, data_dir):
    async with make_stack(bus, sim, data_dir) as s:
        yield s
