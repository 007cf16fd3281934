"""``kta doctor`` against live settings: a real-Kite setup that is ready, one with each mistake the
pre-flight exists for, and the network checks (only on request) against a loopback broker — never
api.kite.trade."""

from __future__ import annotations

import asyncio

from gateway import users
from kta import doctor
from shared import natsd
from shared.broker_sessions import put_session, vault_for
from tests.helpers import stack_settings
from tests.kta.test_cli import kta
from tests.simkit import login

READY = dict(kite_root="https://api.kite.trade", kite_ws_root="wss://ws.kite.trade",
             kite_login_url="https://kite.zerodha.com/connect/login", public_url="https://kta.example.in",
             env="prod", smtp_host="smtp.example.in", smtp_user="kta", smtp_from="kta@example.in")


def by_name(checks: list[doctor.Check]) -> dict[str, doctor.Check]:
    return {c.name: c for c in checks}


async def test_a_ready_setup_has_nothing_to_fix(nats_url, tmp_path):
    settings = stack_settings(nats_url, tmp_path / "var", **READY)
    users.add_user(settings, zerodha_id="AB1234", email="ab@example.in", api_key="app-key", api_secret="app-secret")
    users.set_egress(settings, "AB1234", local_address="127.0.0.2")
    checks = await doctor.run(settings)
    text, code = doctor.report(checks)
    assert code == 0 and "[FAIL]" not in text, text
    named = by_name(checks)
    assert named["KTA_KITE_ROOT"].status == doctor.OK and named["KTA_PUBLIC_URL"].status == doctor.OK
    assert "https://kta.example.in/auth/kite/callback" in named["Kite redirect URL"].detail
    assert named["user AB1234"].status == doctor.OK and "IP Whitelist" in named["user AB1234"].detail
    assert named["session AB1234"].detail.startswith("absent")  # NATS is up: sessions are read
    assert not any(c.name.startswith("reach ") for c in checks)  # no network unless asked


async def test_each_mistake_is_named_with_what_to_do(nats_url, tmp_path):
    settings = stack_settings(nats_url, tmp_path / "var", **{**READY, "env": "dev", "smtp_host": ""})
    named = by_name(await doctor.run(settings))
    assert named["users"].status == doctor.FAIL and "kta users add" in named["users"].fix
    assert named["KTA_ENV"].status == doctor.FAIL  # codes on the page of a public site
    assert named["SMTP"].status == doctor.WARN

    plain = stack_settings(nats_url, tmp_path / "var", **{**READY, "public_url": "http://kta.example.in"})
    users.add_user(plain, zerodha_id="AB1234", email="ab@example.in", api_key="app-key", api_secret="app-secret")
    users.add_user(plain, zerodha_id="CD5678", email="cd@example.in", api_key="kta-demo", api_secret="x")
    users.set_egress(plain, "AB1234", local_address="192.0.2.1")  # no interface has it
    checks = await doctor.run(plain)
    named = by_name(checks)
    assert named["KTA_PUBLIC_URL"].status == doctor.FAIL and "TLS" in named["KTA_PUBLIC_URL"].fix
    assert named["user AB1234"].status == doctor.FAIL and "192.0.2.1" in named["user AB1234"].detail
    assert named["user CD5678"].status == doctor.WARN and "kite_sim" in named["user CD5678"].detail
    assert doctor.report(checks)[1] == 1

    prod_no_mail = stack_settings(nats_url, tmp_path / "var", **{**READY, "smtp_host": ""})
    assert by_name(await doctor.run(prod_no_mail))["SMTP"].status == doctor.FAIL


async def test_the_network_checks_reach_the_configured_broker_directly_through_the_egress_and_ask_a_quote(
        nats_url, bus, sim, tmp_path):
    settings = stack_settings(nats_url, tmp_path / "var", sim)
    users.add_user(settings, zerodha_id="DEMO01", email="demo@kta.local", api_key=sim.api_key,
                   api_secret=sim.api_secret)
    users.set_egress(settings, "DEMO01", local_address="127.0.0.2")
    await put_session(bus, vault_for(settings), "DEMO01", sim.api_key, login(sim), egress_local_address="127.0.0.2")
    checks = await doctor.run(settings, with_network=True)
    reach = [c for c in checks if c.name == f"reach {sim.root}"]
    assert [c.status for c in reach] == [doctor.OK, doctor.OK]
    assert reach[1].detail == "for DEMO01 via source address 127.0.0.2"
    assert by_name(checks)["market data DEMO01"].status == doctor.OK
    assert by_name(checks)["session DEMO01"].status == doctor.OK

    closed = stack_settings(nats_url, tmp_path / "var2", kite_root=f"http://127.0.0.1:{natsd.free_port()}")
    (reach,) = [c for c in await doctor.run(closed, with_network=True) if c.name.startswith("reach ")]
    assert reach.status == doctor.FAIL and "cannot reach the broker" in reach.detail


async def test_kta_doctor_exits_non_zero_when_something_must_be_fixed(tmp_path):
    r = await asyncio.to_thread(kta, "doctor", "--data-dir", str(tmp_path / "var"),
                                env={"KTA_NATS_URL": f"nats://127.0.0.1:{natsd.free_port()}"})
    assert r.returncode == 1 and "[FAIL] users: nobody can log in" in r.stdout
    assert "docs/real-kite.md" in r.stdout
