"""The gateway under real uvicorn in the test's event loop, on a free loopback port, with a temp data
dir; a dedicated kite_sim whose Kite redirect points back at that port; logged-in httpx clients."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import httpx
import msgspec
import pytest
import uvicorn

from gateway import users
from gateway.app import bind
from gateway.main import build
from shared import natsd
from shared.event_loop import uvicorn_options
from shared.kite import tls
from shared.subjects import KV_BROKER_SESSIONS
from tests.helpers import eventually, stack_settings
from tests.simkit import start_sim
from tests.stackkit import workers

USER_B = {"zerodha_id": "DEMO02", "email": "demo2@kta.local", "api_key": "kta-demo", "api_secret": "kta-demo-secret",
          "name": "Second Trader"}


@pytest.fixture(scope="session")
def gateway_port():
    return natsd.free_port()


@pytest.fixture(scope="session")
def gw_sim(tmp_path_factory, gateway_port):
    """A kite_sim redirecting its Kite login back to the gateway's callback."""
    s = start_sim(tmp_path_factory.mktemp("gwsim"), speed=60.0,
                  redirect_url=f"http://127.0.0.1:{gateway_port}/auth/kite/callback")
    yield s
    s.stop()


@dataclass
class Gateway:
    url: str
    app: object
    settings: object

    @property
    def services(self):
        return self.app.state.services

    def client(self, **kw) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=15, follow_redirects=False, **kw, verify=tls.context())


_idle_apps: dict[bytes, list] = {}  # the settings but their data dir -> built apps no test serves now


def _app_for(settings, heartbeat: float):
    """A gateway app for ``settings``: one this process built before for the same settings (but the data dir),
    bound to this test's data (gateway.app.bind) — building one is ~0.3 CPU-s of Litestar's route registration,
    paid ~130 times a suite — else a new one."""
    key = msgspec.json.encode(msgspec.structs.replace(settings, data_dir=""))
    idle = _idle_apps.setdefault(key, [])
    if idle:
        app = idle.pop()
        bind(app, settings, heartbeat=heartbeat)
    else:
        app = build(settings)
        if heartbeat != 15.0:
            bind(app, settings, heartbeat=heartbeat)
    return key, app


@contextlib.asynccontextmanager
async def serve(settings, heartbeat: float = 15.0):
    key, app = _app_for(settings, heartbeat)
    config = uvicorn.Config(app, host="127.0.0.1", port=settings.gateway_port, log_level="warning",
                            lifespan="on", timeout_graceful_shutdown=2,
                            http=uvicorn_options(settings.event_loop)["http"])
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: server.started or task.done(), 20, "gateway start")
        if task.done():
            task.result()
        yield Gateway(f"http://127.0.0.1:{settings.gateway_port}", app, settings)
    finally:
        server.should_exit = True
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(task, 10)
        if task.done() and not task.cancelled() and task.exception() is None:  # stopped cleanly: served again
            _idle_apps[key].append(app)


@pytest.fixture
def gw_settings(nats_server, data_dir, gw_sim, gateway_port):
    """A fresh stack's settings: its journal is new, so its users' accounts at the session's sim are
    opened afresh too (a worker would adopt what earlier tests traded there)."""
    gw_sim.check_running()
    for user_id in ("DEMO01", USER_B["zerodha_id"]):
        gw_sim.admin("accounts/reset", {"user_id": user_id})
    s = stack_settings(nats_server, data_dir, gw_sim, gateway_port=gateway_port, env="dev")
    users.ensure_demo_user(s)
    users.add_user(s, **USER_B)
    return s


@pytest.fixture
async def gateway(gw_settings):
    async with serve(gw_settings) as gw:
        yield gw


async def login(gw: Gateway, zerodha_id: str = "DEMO01", email: str = "demo@kta.local") -> tuple[httpx.AsyncClient, str]:
    """A client logged in through the real OTP flow (dev mode shows the code); returns (client, csrf)."""
    client = gw.client()
    r = await client.post("/auth/send-otp", json={"zerodha_id": zerodha_id, "email": email})
    assert r.status_code == 200, r.text
    r = await client.post("/auth/verify-otp", json={"zerodha_id": zerodha_id, "otp": r.json()["dev_otp"]})
    assert r.status_code == 200, r.text
    return client, r.json()["csrf_token"]


async def connect_kite(client: httpx.AsyncClient, sim, kite_user: str = "DEMO01", password: str = "demo") -> httpx.Response:
    """Gateway → sim login page → POST the form like a browser → back to the gateway callback."""
    r = await client.get("/auth/kite/login")
    assert r.status_code == 302
    url = httpx.URL(r.headers["location"])
    assert url.params["api_key"] == "kta-demo" and url.params["v"] == "3"
    async with httpx.AsyncClient(verify=tls.context()) as browser:
        r = await browser.post(sim.login_url, data={"api_key": url.params["api_key"], "user_id": kite_user,
                                                   "password": password})
    assert r.status_code == 302
    back = httpx.URL(r.headers["location"])
    assert back.host == "127.0.0.1" and back.path == "/auth/kite/callback"
    return await client.get(back.path, params=dict(back.params))


async def forget_broker_sessions(bus) -> None:
    """The KV bucket outlives a test (one nats-server per session): start these users unconnected."""
    kv = await bus.kv(KV_BROKER_SESSIONS)
    for user_id in ("DEMO01", "DEMO02"):
        with contextlib.suppress(Exception):
            await kv.delete(user_id)


@contextlib.asynccontextmanager
async def serve_with_workers(settings, bus, **kw):
    """The gateway under uvicorn, then the three workers in this event loop — in that order: building the
    gateway (its app, the templates) holds the loop ~0.5 CPU-s, seconds on a loaded machine, and workers
    already running would miss their partition leases' renewals meanwhile (``LEASE_SECONDS``); a lost lease
    moves the user's partition, whose commands then go unanswered (503) until it is claimed again. In
    production each is its own process and nothing holds the workers' loops."""
    async with serve(settings, **kw) as gw, workers(settings, bus):
        yield gw


@pytest.fixture
async def stack(gateway, gw_settings, bus):
    """The gateway with the three workers in this event loop, no user connected to Kite yet."""
    await forget_broker_sessions(bus)
    async with workers(gw_settings, bus):
        yield gateway
