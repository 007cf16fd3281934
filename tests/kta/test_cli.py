"""The ``kta`` command line as a trader types it: global options before or after the subcommand, and
``kta up --no-sim`` refusing to start without the real Kite's endpoints (never the paper broker's demo)."""

from __future__ import annotations

import asyncio
import os
import queue
import re
import subprocess
import threading
from pathlib import Path

import httpx
import pytest

from kta.cli import parser
from shared import natsd
from shared.kite import tls
from tests import simfork

pytestmark = pytest.mark.slow(seconds=35)

ROOT = Path(__file__).resolve().parents[2]
KITE_ENV = ("KTA_KITE_ROOT", "KTA_KITE_WS_ROOT", "KTA_KITE_LOGIN_URL")


def kta(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KTA_")}
    return simfork.run("kta", list(args), cwd=ROOT, env={**clean, **(env or {})}, timeout=timeout)


@pytest.mark.parametrize("argv", [["--data-dir", "./d", "up"], ["up", "--data-dir", "./d"],
                                  ["--config", "c.toml", "users", "list", "--data-dir", "./d"]])
def test_global_options_are_accepted_before_and_after_the_subcommand(argv):
    a = parser().parse_args(argv)
    assert a.data_dir == "./d"
    assert getattr(a, "config", None) == ("c.toml" if "c.toml" in argv else None)


def test_kta_up_help_lists_the_global_options():
    out = kta("up", "--help").stdout
    assert "--data-dir" in out and "--config" in out and "--no-sim" in out


def test_no_sim_without_the_kite_settings_refuses_and_names_them(tmp_path):
    data = tmp_path / "var"
    r = kta("up", "--no-sim", "--data-dir", str(data))
    assert r.returncode != 0
    assert all(name in r.stderr for name in KITE_ENV), r.stderr
    assert not (data / "gateway.db").exists()  # no demo user, nothing started

    r = kta("up", "--no-sim", "--data-dir", str(data), env={"KTA_KITE_ROOT": "https://api.kite.trade"})
    assert r.returncode != 0 and "KTA_KITE_ROOT" not in r.stderr
    assert "KTA_KITE_WS_ROOT" in r.stderr and "KTA_KITE_LOGIN_URL" in r.stderr

    config = tmp_path / "kta.toml"  # the settings may come from the config file too
    config.write_text('kite_root = "https://api.kite.trade"\nkite_ws_root = "wss://ws.kite.trade"\n')
    r = kta("up", "--no-sim", "--config", str(config), "--data-dir", str(data))
    assert r.returncode != 0 and "KTA_KITE_LOGIN_URL" in r.stderr and "KTA_KITE_ROOT" not in r.stderr


@pytest.mark.slow
def test_no_sim_with_the_kite_settings_runs_without_the_paper_broker(tmp_path, sim):
    """The broker endpoints given (here a separately run kite_sim standing in for Kite): no sim child,
    no demo user, and "Connect Kite" sends the trader to the configured login page."""
    data, port = tmp_path / "var", natsd.free_port()
    env = {"KTA_KITE_ROOT": sim.root, "KTA_KITE_WS_ROOT": sim.ws_root, "KTA_KITE_LOGIN_URL": sim.login_url}
    added = kta("users", "add", "AB1234", "--email", "ab@example.com", "--api-key", sim.api_key,
                "--api-secret", sim.api_secret, "--data-dir", str(data))
    assert added.returncode == 0, added.stderr
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KTA_")}
    proc = simfork.popen("kta", ["up", "--no-sim", "--port", str(port), "--data-dir", str(data)], cwd=ROOT,
                         env={**clean, **env})
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True)
    try:
        reader.start()
        seen = [lines.get(timeout=120)]
        while "kta is up:" not in seen[-1]:
            seen.append(lines.get(timeout=120))
        url = re.search(r"kta is up: (http://\S+)", seen[-1]).group(1)
        told = lines.get(timeout=5) + lines.get(timeout=5)
        assert sim.root in told and "AB1234" in told and "DEMO01" not in told, told
        assert "kite_sim" not in "".join(seen) + told
        with httpx.Client(base_url=url, timeout=10, verify=tls.context()) as browser:
            sent = browser.post("/auth/send-otp", data={"zerodha_id": "AB1234", "email": "ab@example.com"})
            code = re.search(r'id="dev-otp">(\d{6})<', sent.text).group(1)
            browser.post("/auth/verify-otp", data={"zerodha_id": "AB1234", "otp": code})
            connect = browser.get("/auth/kite/login")
            assert connect.status_code == 302
            assert connect.headers["location"].startswith(sim.login_url)
        listed = kta("users", "list", "--data-dir", str(data)).stdout
        assert "AB1234" in listed and "DEMO01" not in listed
    finally:
        proc.terminate()
        proc.wait(20)
        reader.join(10)  # at the pipe's end: kta up has exited, and none of its children holds the pipe
        proc.stdout.close()


async def test_kta_users_egress_is_stored_checked_and_applied_to_the_live_session(nats_url, bus, tmp_path):
    from gateway import users
    from shared.broker_sessions import get_session, put_session, vault_for
    from tests.helpers import stack_settings

    data = tmp_path / "var"
    settings = stack_settings(nats_url, data)
    users.add_user(settings, zerodha_id="AB1234", email="ab@example.com", api_key="k", api_secret="s")
    await put_session(bus, vault_for(settings), "AB1234", "k", "access-token")
    env = {"KTA_NATS_URL": nats_url, "KTA_NATS_CREDS": settings.nats_creds}

    r = await asyncio.to_thread(kta, "users", "egress", "AB1234", "--local-address", "127.0.0.2",
                                "--data-dir", str(data), env=env)
    assert r.returncode == 0, r.stderr
    assert "orders leave from source address 127.0.0.2" in r.stdout and "usable" in r.stdout
    assert "applied to the live Kite session" in r.stdout
    live = await get_session(bus, vault_for(settings), "AB1234")
    assert live.session.egress_local_address == "127.0.0.2" and live.access_token == "access-token"
    assert "orders from: source address 127.0.0.2" in kta("users", "list", "--data-dir", str(data)).stdout

    r = await asyncio.to_thread(kta, "users", "egress", "AB1234", "--local-address", "192.0.2.1",
                                "--data-dir", str(data), env=env)
    assert "cannot be used now: 192.0.2.1 is not an address of this machine" in r.stdout

    r = kta("users", "egress", "AB1234", "--proxy", "ftp://host", "--data-dir", str(data), env=env)
    assert r.returncode != 0 and "proxy" in r.stderr


def test_kta_sim_and_kta_up_pass_the_edis_accounts_to_kite_sim():
    from kite_sim.main import options_from

    assert options_from(parser().parse_args(["sim", "--edis", "demo01, DEMO02"])).edis == {"DEMO01", "DEMO02"}
    assert options_from(parser().parse_args(["sim"])).edis == frozenset()
    assert parser().parse_args(["up", "--sim-edis", "DEMO01"]).sim_edis == "DEMO01"
    assert "--sim-edis" in kta("up", "--help").stdout and "--edis" in kta("sim", "--help").stdout
