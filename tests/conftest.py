"""Fixtures every test builds on: a real nats-server with JetStream on a free port, a connected
bus, temp data dirs. Nothing here is mocked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shared import natsd  # noqa: E402
from shared.bus import Bus  # noqa: E402

# The suite must never read the developer's own settings.
for _k in [k for k in os.environ if k.startswith("KTA_")]:
    del os.environ[_k]


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory):
    """A real nats-server (JetStream on) for the whole session; yields its URL."""
    port = natsd.free_port()
    store = tmp_path_factory.mktemp("jetstream")
    proc = natsd.start(port, store)
    yield f"nats://127.0.0.1:{port}"
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def nats_url(nats_server):
    return nats_server


@pytest.fixture
async def bus(nats_server):
    b = await Bus.connect(nats_server, "test")
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
def sim(tmp_path_factory):
    """A real kite_sim process (fast market clock, admin API on) shared by the session."""
    from tests.simkit import start_sim

    s = start_sim(tmp_path_factory.mktemp("sim"), speed=60.0)
    yield s
    s.stop()
