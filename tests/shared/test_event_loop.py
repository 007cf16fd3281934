"""``KTA_EVENT_LOOP``: a worker and the gateway, each started as its own process, run the event loop the
setting names and say so in their health replies; asked for a loop whose package is missing, a process
stops naming the setting."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from shared import event_loop
from shared import messages as m
from shared import natsd, subjects
from shared.config import ConfigError, load, to_env
from tests import helpers
from tests.helpers import eventually, stack_settings

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow(seconds=10)


async def _health_of(bus, service: str, pid: int) -> m.Ok:
    """The health reply of ``service`` in process ``pid`` (another process of the same service may answer first)."""
    found: list[m.Ok] = []

    async def asked() -> bool:
        try:
            reply = m.reply_decoder.decode((await bus.nc.request(subjects.service_health(service), b"",
                                                                 timeout=2)).data)
        except Exception:  # noqa: BLE001 - not up yet
            return False
        if isinstance(reply, m.Ok) and str(reply.data.get("instance", "")).endswith(f":{pid}"):
            found.append(reply)
        return bool(found)

    await eventually(asked, 60, f"{service} (pid {pid}) to answer its health check")
    return found[0]


@pytest.mark.parametrize("choice", ["asyncio", "uvloop"])
@pytest.mark.parametrize("argv", [["worker", "ticker"], ["gateway"]], ids=["worker", "gateway"])
async def test_a_process_runs_the_loop_its_setting_names(nats_server, bus, tmp_path, choice, argv):
    settings = stack_settings(nats_server, tmp_path / "var", event_loop=choice, gateway_port=natsd.free_port())
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("KTA_")}, **to_env(settings)}
    # exec'd as kta up starts its children (under the tests' fork server a uvloop worker never finished stopping)
    with open(tmp_path / "process.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "kta", *argv], cwd=ROOT, env=env, stdout=log, stderr=log)
    try:
        health = await _health_of(bus, "gateway" if argv == ["gateway"] else "ticker", proc.pid)
        assert health.data["loop"] == choice, health
    finally:
        proc.terminate()
        try:  # uvicorn re-raises the SIGTERM it has shut the gateway down on
            assert proc.wait(timeout=30) in (0, -signal.SIGTERM), (tmp_path / "process.log").read_text()
        finally:  # one that did not stop must not live on, answering the next tests on the session's nats-server
            if proc.poll() is None:
                proc.kill()


def test_a_missing_loop_package_stops_the_process_naming_the_setting(monkeypatch):
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if not installed: its import raises ImportError
    for ask in (event_loop.loop_factory, event_loop.uvicorn_options):
        with pytest.raises(SystemExit, match=r"KTA_EVENT_LOOP=uvloop: the uvloop package is not installed"):
            ask("uvloop")
    monkeypatch.setitem(sys.modules, "httptools", None)
    monkeypatch.delitem(sys.modules, "uvloop")
    with pytest.raises(SystemExit, match=r"KTA_EVENT_LOOP=uvloop: the httptools package is not installed"):
        event_loop.uvicorn_options("uvloop")


def test_an_unknown_loop_is_refused_naming_the_setting():
    with pytest.raises(ConfigError, match="KTA_EVENT_LOOP"):
        load(environ={"KTA_EVENT_LOOP": "tokio"})


async def test_the_suite_runs_on_the_loop_its_caller_names():
    """``KTA_EVENT_LOOP=uvloop python -m pytest ...`` runs the tests' own loop on uvloop (tests/conftest.py)."""
    assert event_loop.running() == helpers.EVENT_LOOP
