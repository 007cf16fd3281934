"""A broker session's absence and its store's silence are different answers, on real nats-servers of the
test's own (never the session's shared one, which is stopped here): no key is "connect Kite" (None /
NotConnected / 409), a store that cannot answer — the server stopped, or JetStream (so the KV bucket)
not there — is ``SessionStoreUnavailable``: the gateway's 503 in words, the execution worker's
``sessions_unavailable`` answer to a command, and a signal left to JetStream's redelivery instead of
refused for want of a session; the strategy worker's scan answers the same, and its seeding goes on cold."""

from __future__ import annotations

import subprocess

import pytest
from cryptography.fernet import Fernet

from execution_worker.main import ExecutionWorker
from gateway.broker_clients import BrokerClients
from gateway.trading_error import TradingError
from shared import messages as m
from shared import natsd
from shared.broker_sessions import SessionStoreUnavailable, get_session, put_session
from shared.bus import Bus
from shared.config import load
from shared.kite.clients import NotConnected
from shared.secrets import Vault
from strategy_worker.main import StrategyWorker

pytestmark = [pytest.mark.slow(seconds=15), pytest.mark.timeout(90)]
USER = "KV01"


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def settings(tmp_path):
    key = Fernet.generate_key().decode()
    return load(data_dir=str(tmp_path / "var"), secret_key=key)


async def connected(port: int) -> Bus:
    """A store that does not answer is the same SessionStoreUnavailable after 2 s as after production's 5 s:
    each of the seven reads below waits it out once the server is stopped."""
    return await Bus.connect(f"nats://127.0.0.1:{port}", "gateway", connect_timeout=5.0, js_timeout=2.0)


async def test_a_stopped_server_is_not_a_missing_session(tmp_path, settings):
    port = natsd.free_port()
    proc = natsd.start(port, tmp_path / "js")
    bus = await connected(port)
    try:
        await bus.ensure_streams()
        vault = Vault(settings.secret_key.encode())
        await put_session(bus, vault, USER, "app-key", "token-1")
        assert (await get_session(bus, vault, USER)).access_token == "token-1"
        assert await get_session(bus, vault, "NOBODY") is None  # no key: no session
        clients = BrokerClients(bus, settings)
        with pytest.raises(NotConnected):
            await clients.client("NOBODY")
        assert (await clients.state("NOBODY"))["state"] == "absent"

        stop(proc)
        with pytest.raises(SessionStoreUnavailable, match="broker session store .* is unavailable"):
            await get_session(bus, vault, USER)
        with pytest.raises(SessionStoreUnavailable):  # not NotConnected: the trader is not told to connect
            await clients.client(USER)
        with pytest.raises(TradingError) as page:
            await clients.state(USER)
        assert page.value.status == 503 and page.value.code == "sessions_unavailable"
        assert "try again in a moment" in page.value.message

        worker = ExecutionWorker(bus, settings)
        answer = await worker.on_command(m.GetPositions(), USER, None)
        assert isinstance(answer, m.Error) and answer.code == "sessions_unavailable", answer
        sig = m.Signal(id="sig-kv-1", user_id=USER, strategy_id="s1", strategy="ema_crossover", exchange=m.Exchange.NSE,
                       tradingsymbol="INFY", instrument_token=408065, transaction_type=m.TransactionType.BUY, quantity=1)
        with pytest.raises(SessionStoreUnavailable):  # raised: JetStream redelivers it later
            await worker.on_signal(sig, None)
        assert worker.journal.signal_decision(sig.id) is None  # not refused as "no broker session"
        worker.journal.close()

        strategies = StrategyWorker(bus, settings)
        scanned = await strategies.commands.scan(USER, m.Scan())
        assert isinstance(scanned, m.Error) and scanned.code == "sessions_unavailable", scanned
        strategies.seeder.request(USER, [408065])
        await strategies.seeder.idle()
        assert 408065 in strategies.engine.ready  # seeding skipped: the symbol trades cold, never stuck unready
    finally:
        await bus.close()
        if proc.poll() is None:
            stop(proc)


async def test_a_server_without_jetstream_has_no_session_store(tmp_path, settings):
    port = natsd.free_port()
    proc = subprocess.Popen([natsd.binary(), "-a", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)
    try:
        natsd.wait_port("127.0.0.1", port, proc=proc)
        bus = await connected(port)
        try:
            with pytest.raises(SessionStoreUnavailable):
                await get_session(bus, Vault(settings.secret_key.encode()), USER)
        finally:
            await bus.close()
    finally:
        stop(proc)
