"""A trader's own read-only NATS key (``kta users nats-creds ID``) against the session's real
nats-server: the documented example subscriber receives the user's messages, the key can read
nothing of another user and publish nothing, the schema document is generated from the Structs, and
a revoked key is refused."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import nats
import pytest

from shared import messages as m
from shared import reader
from shared import subjects as s
from shared.bus import auth_options
from tests import simfork
from tests.helpers import eventually, stack_settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "nats_subscriber.py"


def test_the_schema_document_is_generated_from_the_messages():
    assert reader.SCHEMAS.read_text() == reader.render(), "run: python -m shared.reader"
    doc = json.loads(reader.SCHEMAS.read_text())
    assert doc["subjects"]["kta.u.<user>.ticks.<instrument_token>"] == {"$ref": "#/$defs/Tick"}
    assert {"Tick", "Signal", "SignalGroup", "OrderEvent", "PositionSnapshot", "RiskState", "StrategyOutcome",
            "Alert"} <= set(doc["$defs"])


def kta(settings, *args: str) -> subprocess.CompletedProcess:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("KTA_")},
           "KTA_NATS_CREDS": settings.nats_creds}
    return simfork.run("kta", ["--data-dir", settings.data_dir, *args], cwd=ROOT, env=env, timeout=60)


async def _refused(url: str, creds: str, action) -> str:
    errors: list[str] = []

    async def on_error(e):
        errors.append(str(e))

    nc = await nats.connect(url, user_credentials=creds, error_cb=on_error, allow_reconnect=False)
    try:
        await action(nc)
        await nc.flush()
        await eventually(lambda: errors, 5, "the server's refusal")
    finally:
        await nc.close()
    return errors[0]


async def test_a_read_only_key_follows_its_user_and_nothing_else(nats_server, bus, tmp_path):
    from gateway import users

    settings = stack_settings(nats_server, tmp_path / "var")
    users.ensure_demo_user(settings)
    creds = tmp_path / "DEMO01.creds"
    assert kta(settings, "users", "nats-creds", "NOBODY").returncode != 0  # only a known user gets a key
    issued = kta(settings, "users", "nats-creds", "DEMO01", "--out", str(creds))
    assert issued.returncode == 0, issued.stderr
    assert oct(creds.stat().st_mode & 0o777) == "0o600" and "BEGIN USER NKEY SEED" not in issued.stdout

    example = subprocess.Popen([sys.executable, str(EXAMPLE), "--url", nats_server, "--creds", str(creds),
                                "--user", "DEMO01", "--count", "2"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        assert "subscribed" in example.stdout.readline()
        await bus.publish(s.risk("DEMO02"), m.RiskState(user_id="DEMO02", ts=1, state="HALTED"))  # not theirs
        await bus.publish(s.user_ticks("DEMO01", 408065), m.Tick(instrument_token=408065, mode="ltp",
                                                                 tradable=True, last_price=1500.5))
        await bus.publish(s.risk("DEMO01"), m.RiskState(user_id="DEMO01", ts=2, state="ACTIVE"))
        await bus.nc.flush()
        out, _ = await asyncio.to_thread(example.communicate, timeout=30)
    finally:
        if example.poll() is None:
            example.kill()
    lines = [json.loads(line) for line in out.splitlines()]
    assert [x["subject"] for x in lines] == ["kta.u.DEMO01.ticks.408065", "kta.u.DEMO01.risk"]
    assert lines[0]["payload"][:4] == [408065, "ltp", True, 1500.5] and lines[1]["payload"]["state"] == "ACTIVE"

    for action, what in [
        (lambda nc: nc.subscribe("kta.u.DEMO02.risk"), "subscription"),
        (lambda nc: nc.subscribe("kta.ticks.>"), "subscription"),
        (lambda nc: nc.subscribe("kta.u.DEMO01.cmd.>"), "subscription"),
        (lambda nc: nc.publish(s.signals("DEMO01"), b"x"), "publish"),
    ]:
        assert f"permissions violation for {what}" in await _refused(nats_server, str(creds), action)

    revoked = kta(settings, "users", "nats-creds", "DEMO01", "--revoke")
    assert revoked.returncode == 0 and "revoked 1" in revoked.stdout, revoked.stdout + revoked.stderr

    async def refused_now():
        try:
            nc = await nats.connect(nats_server, user_credentials=str(creds), allow_reconnect=False,
                                    max_reconnect_attempts=0, connect_timeout=2)
        except Exception as e:  # noqa: BLE001
            return "Authorization Violation" in str(e)
        await nc.close()
        return False

    await eventually(refused_now, 10, "the revoked key to be refused")
    # the services' own identities are untouched by the reload
    nc = await nats.connect(nats_server, allow_reconnect=False, **auth_options(settings.nats_creds, "gateway"))
    await nc.close()


@pytest.mark.parametrize("user_id", ["demo01", "DEMO01.>", "*"])
def test_a_key_is_only_for_a_valid_user_id(nats_auth, user_id):
    from shared.subjects import SubjectError

    with pytest.raises(SubjectError):  # never a wildcard, a dot or a lower-case id into a permission
        nats_auth.issue_reader(user_id)
