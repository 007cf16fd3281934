"""A strategy worker SIGKILLed and started again on its store is the same instance: it owns its users'
partitions before it first answers health, instead of waiting out its dead self's leases (up to
``LEASE_SECONDS``) while those users' strategies run nowhere."""

import os
import signal
import subprocess
from pathlib import Path

import pytest

from shared import messages as m
from shared import partition, subjects
from shared.config import to_env
from tests import simfork
from tests.helpers import eventually, stack_settings

pytestmark = pytest.mark.slow(seconds=12)

ROOT = Path(__file__).resolve().parents[2]


def spawn(settings, log_path: Path) -> simfork.Forked:
    """``python -m kta worker strategy``, forked from the tests' preloaded server (tests/simfork.py)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KTA_")} | to_env(settings)
    with open(log_path, "ab") as log:
        return simfork.spawn(["worker", "strategy"], cwd=ROOT, env=env, log=log.fileno(), program="kta")


async def first_health(bus) -> dict:
    """The first health answer the worker gives (its partitions as it starts serving)."""
    async def probe():
        try:
            reply = m.reply_decoder.decode((await bus.nc.request(subjects.service_health("strategy"), b"",
                                                                 timeout=0.5)).data)
        except Exception:  # noqa: BLE001 - not up yet
            return None
        return reply.data

    return await eventually(probe, timeout=30, what="strategy health")


async def test_a_sigkilled_strategy_worker_restarted_on_its_store_owns_its_partitions_at_once(
        bus, sim, data_dir, tmp_path):
    settings = stack_settings(bus.nc.connected_url.geturl(), data_dir, sim)
    proc = spawn(settings, tmp_path / "worker.log")
    try:
        first = await first_health(bus)
        assert first["partitions"] == partition.PARTITIONS, first
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL
        proc = spawn(settings, tmp_path / "worker.log")
        again = await first_health(bus)
        assert again["partitions"] == partition.PARTITIONS, again  # its own leases, taken back at once
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
