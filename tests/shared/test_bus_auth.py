"""The authenticated bus against the session's real nats-server (operator mode, the permission table
of shared/natsperms.py enforced): who may connect, who may publish what, and a payload that names
another user than its subject is dead-lettered by the shared consuming code."""

from __future__ import annotations

import asyncio
import uuid

import nats
import pytest

from shared import messages as m
from shared import natsperms
from shared import subjects as s
from shared.bus import auth_options
from tests.helpers import connect, eventually


def _signal(user_id: str) -> m.Signal:
    return m.Signal(id=uuid.uuid4().hex, user_id=user_id, strategy_id="s1", strategy="rsi", exchange="NSE",
                    tradingsymbol="INFY", instrument_token=408065, transaction_type="BUY", quantity=1)


class Client:
    """A raw nats-py connection as one identity, keeping the errors the server sends it."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.nc = None

    async def connect(self, url: str, creds: str, identity: str) -> "Client":
        async def on_error(e: Exception) -> None:
            self.errors.append(str(e))

        self.nc = await nats.connect(url, error_cb=on_error, max_reconnect_attempts=0, allow_reconnect=False,
                                     **auth_options(creds, identity))
        return self

    async def refused(self, what: str) -> None:
        """Wait for the server's violation notice (nats-py reports it lower-cased)."""
        await self.nc.flush()
        await eventually(lambda: any("permissions violation" in e and what.lower() in e for e in self.errors),
                         5, f"a permissions violation for {what}")


async def _client(nats_server, nats_auth, identity: str) -> Client:
    return await Client().connect(nats_server, str(nats_auth.path), identity)


async def test_a_connection_without_credentials_is_refused(nats_server):
    with pytest.raises(Exception, match="Authorization Violation"):
        await nats.connect(nats_server, max_reconnect_attempts=0, allow_reconnect=False, connect_timeout=2)


async def test_a_forged_identity_is_refused(nats_server, tmp_path):
    from shared.natsauth import AuthDir

    other = AuthDir.ensure(tmp_path / "other-install")  # same permissions, a key this server never trusted
    with pytest.raises(Exception, match="Authorization Violation"):
        await nats.connect(nats_server, max_reconnect_attempts=0, allow_reconnect=False, connect_timeout=2,
                           **auth_options(str(other.path), "strategy"))


async def test_the_gateway_cannot_publish_signals_orders_or_ticks(nats_server, nats_auth, bus):
    """The gateway faces the internet: it sends commands and reads, and the server drops any signal,
    order, tick or broker update it tries to publish — core or JetStream."""
    gw = await _client(nats_server, nats_auth, "gateway")
    seen = asyncio.Queue()
    watch = await bus.nc.subscribe("kta.u.GWTEST.>", cb=seen.put)
    await bus.sync()  # the watch is live before the gateway publishes: "nothing seen" means dropped, not early
    before = (await bus.js.stream_info(s.STREAM_SIGNALS)).state.messages
    try:
        for subject in (s.signals("GWTEST"), s.orders("GWTEST"), s.outcomes("GWTEST"), s.risk("GWTEST"),
                        s.order_updates("GWTEST"), s.ticks(408065)):
            await gw.nc.publish(subject, m.encode(_signal("GWTEST")))
            await gw.refused(f'"{subject}"')
        with pytest.raises(Exception):  # a JetStream publish gets no ack either
            await gw.nc.jetstream().publish(s.signals("GWTEST"), m.encode(_signal("GWTEST")), timeout=1)
        # what the gateway may do, it can: a command goes through
        await gw.nc.publish(s.cmd("GWTEST", "strategy", "list_strategies"), m.encode(m.ListStrategies()))
        got = await asyncio.wait_for(seen.get(), 5)
        assert got.subject == s.cmd("GWTEST", "strategy", "list_strategies") and seen.empty()
        assert (await bus.js.stream_info(s.STREAM_SIGNALS)).state.messages == before
    finally:
        await watch.unsubscribe()
        await gw.nc.close()


@pytest.mark.parametrize(("identity", "subject"), [
    ("ticker", s.signals("XTEST")),  # only the strategy worker publishes signals
    ("strategy", s.orders("XTEST")),  # only the execution worker publishes orders ...
    ("strategy", s.outcomes("XTEST")),
    ("execution", s.signals("XTEST")),
    ("execution", s.ticks(1)),  # ... and only the ticker worker ticks and broker updates
    ("strategy", s.order_updates("XTEST")),
    ("ops", s.cmd("XTEST", "execution", "set_risk_limits")),  # the health probe only probes
    ("strategy", s.cmd("XTEST", "execution", "set_risk_limits")),
    ("cli", s.signals("XTEST")),  # kta backtest beside a running stack reads a session, nothing more
])
async def test_each_service_publishes_only_what_it_owns(nats_server, nats_auth, identity, subject):
    c = await _client(nats_server, nats_auth, identity)
    try:
        await c.nc.publish(subject, b"x")
        await c.refused(f'"{subject}"')
    finally:
        await c.nc.close()


async def test_replies_to_one_identity_are_invisible_to_another(nats_server, nats_auth):
    """Every identity has its own inbox prefix: the strategy worker cannot read the gateway's replies."""
    c = await _client(nats_server, nats_auth, "strategy")
    try:
        await c.nc.subscribe(f"{natsperms.inbox_prefix('gateway')}.>")
        await c.refused("subscription")
    finally:
        await c.nc.close()


async def test_a_payload_naming_another_user_is_dead_lettered(nats_server, bus):
    """A signal published on DEMO02's subject that names DEMO01 inside never reaches a handler: the
    shared consuming code (core subscribe and JetStream consume alike) dead-letters it, logged, and
    goes on with the next message."""
    consumer = await connect(nats_server, "xuser")
    handled: list[m.Signal] = []

    async def handler(sig, msg):
        handled.append(sig)

    dlq = await bus.js.subscribe(s.dlq("xuser"))
    try:
        await consumer.consume(s.STREAM_SIGNALS, f"xuser-{uuid.uuid4().hex[:6]}", "kta.u.XUSERB.signals.>",
                               m.AnySignal, handler)
        await consumer.subscribe("kta.u.XUSERB.risk", m.RiskState, handler)
        forged, honest = _signal("XUSERA"), _signal("XUSERB")
        await bus.js_publish(s.signals("XUSERB"), forged)
        await bus.publish(s.risk("XUSERB"), m.RiskState(user_id="XUSERA", ts=1, state="ACTIVE"))
        await bus.js_publish(s.signals("XUSERB"), honest)
        await eventually(lambda: handled, 10, "the honest signal")
        first, second = await dlq.next_msg(timeout=5), await dlq.next_msg(timeout=5)
        errors = sorted([first.headers["Kta-Error"], second.headers["Kta-Error"]])
        assert all(e == "user mismatch: subject of XUSERB, payload names XUSERA" for e in errors)
        assert {first.headers["Kta-Subject"], second.headers["Kta-Subject"]} == {s.signals("XUSERB"),
                                                                                 s.risk("XUSERB")}
        assert [x.id for x in handled] == [honest.id]
    finally:
        await dlq.unsubscribe()
        await consumer.close()


def test_a_revoke_signals_only_the_nats_server_of_its_directory(tmp_path, nats_server, nats_auth):
    """A pid file left by a killed server names whatever process has that number now: it is not sent SIGHUP
    (which would end it); the session's server, started with the directory's configuration, is."""
    import signal
    import subprocess

    from shared.natsauth import AuthDir, reload_server

    stale = AuthDir.ensure(tmp_path / "auth")
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        (stale.path / "nats.pid").write_text(str(stranger.pid))
        assert reload_server(stale) is False
        assert stranger.poll() is None
    finally:
        stranger.send_signal(signal.SIGKILL)
        stranger.wait()
    assert reload_server(nats_auth) is True  # the session's nats-server (tests/conftest.py) re-reads it
