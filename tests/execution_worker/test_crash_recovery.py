"""The execution worker as a real process, SIGKILLed in the middle of a stream of signals and started
again: no signal is lost (each has its decision in the journal) and no order is placed twice (the
broker's order book has at most one order per tag, and every accepted signal has its one order or,
when the kill cut its submit off, an order failed as never seen at the broker with its strategy told)."""

import os
import signal as signals
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from execution_worker.journal import Journal
from shared.trading.order import is_terminal
from shared.trading.planning import make_tag
from shared import messages as m
from shared import subjects
from shared.config import to_env
from shared.kite import errors
from shared.kite.budget import SharedBudget
from shared.kite.client import KiteClient
from shared.broker_sessions import put_session, vault_for
from tests import simfork
from tests.execution_worker.kit import USER, signal
from tests.helpers import eventually, stack_settings, wait_health
from tests.simkit import login

pytestmark = pytest.mark.slow(seconds=36)

ROOT = Path(__file__).resolve().parents[2]
N = 24


def spawn(settings, log_path: Path) -> simfork.Forked:
    """``python -m kta worker execution``, forked from the tests' preloaded server (tests/simfork.py)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KTA_")} | to_env(settings)
    with open(log_path, "ab") as log:
        return simfork.spawn(["worker", "execution"], cwd=ROOT, env=env, log=log.fileno(), program="kta")


def fresh_settings(bus, sim, data_dir):
    """A worker process's settings on a fresh account, INFY pinned at 1,500 (each test releases it)."""
    sim.reset_faults()
    sim.admin("accounts/reset", {"user_id": USER})
    sim.admin("price", {"underlying": "INFY", "price": 1500.0})
    return stack_settings(bus.nc.connected_url.geturl(), data_dir, sim, reconcile_interval=1.0, positions_interval=1.0)


def stop(proc: simfork.Forked) -> None:
    proc.send_signal(signals.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


async def test_sigkill_mid_stream_loses_no_signal_and_duplicates_no_order(bus, sim, data_dir, tmp_path):
    sim.reset_faults()
    sim.admin("accounts/reset", {"user_id": USER})  # a fresh journal on an account that never traded
    sim.admin("price", {"underlying": "INFY", "price": 1500.0})
    settings = stack_settings(bus.nc.connected_url.geturl(), data_dir, sim, reconcile_interval=1.0,
                              positions_interval=1.0)
    token = login(sim)
    await put_session(bus, vault_for(settings), USER, sim.api_key, token)
    kite = KiteClient(sim.api_key, token, root=sim.root, rate_limiter=SharedBudget(bus, sim.api_key))
    # alternate buys and sells of one share: flat in the end, inside every risk limit
    sigs = [signal(f"crash-{os.getpid()}-{i}", side="BUY" if i % 2 == 0 else "SELL", qty=1) for i in range(N)]
    proc = spawn(settings, tmp_path / "worker.log")
    try:
        await wait_health(bus, "execution", timeout=30)
        journal = Journal(data_dir / "journal.db")
        sim.faults(latency_ms=150)  # every order in flight for a while: the kill lands mid-placement
        for sig in sigs[: N // 2]:
            await bus.js_publish(subjects.signals(USER), sig, msg_id=sig.id)
        await eventually(lambda: sum(journal.signal_decision(s.id) is not None for s in sigs) >= 4, timeout=30,
                         what="a few signals decided")
        proc.send_signal(signals.SIGKILL)
        assert proc.wait(10) == -signals.SIGKILL
        for sig in sigs[N // 2:]:  # published while no worker runs
            await bus.js_publish(subjects.signals(USER), sig, msg_id=sig.id)
        sim.reset_faults()
        decided_before_restart = sum(journal.signal_decision(s.id) is not None for s in sigs)
        assert decided_before_restart < N, "the kill came too late to be mid-stream"
        proc = spawn(settings, tmp_path / "worker.log")
        await eventually(lambda: all(journal.signal_decision(s.id) is not None for s in sigs), timeout=60,
                         what="every signal decided after the restart")
        tags = {make_tag(s.id, "entry"): s for s in sigs}
        accepted = [t for t, s in tags.items() if journal.signal_decision(s.id) == "accepted"]
        assert accepted
        await eventually(lambda: all(is_terminal((journal.order_by_tag(t) or {}).get("status") or "")
                                     for t in accepted), timeout=30, what="every order final in the journal")

        async def broker_book():  # the worker shares the api key's 10 requests/s with this test
            try:
                return await kite.orders()
            except errors.TooManyRequests:
                return None

        book = Counter(o.tag for o in await eventually(broker_book, what="the order book") if o.tag in tags)
        assert max(book.values()) == 1, book  # no order placed twice
        # and none lost: a submit the kill cut off before it reached the broker is never re-sent (it might
        # still land), so reconciliation fails it as NOT_FOUND and its strategy hears "rejected"
        for tag in (t for t in accepted if not book[t]):
            row = journal.order_by_tag(tag)
            assert (row["state"], row["failure"]) == ("FAILED", "NOT_FOUND"), row
            assert any(o["key"] == f"rejected:{tag}" for o in journal.outcomes(USER)), tag
        for tag in book:  # the journal knows each of them by its broker id
            assert journal.order_by_tag(tag)["order_id"]
    finally:
        stop(proc)
        await kite.aclose()
        sim.reset_faults()
        sim.admin("price", {"underlying": "INFY", "price": None})


async def test_a_restarted_worker_watches_its_positions_before_anything_arrives(bus, sim, data_dir, tmp_path):
    """No signal, order update or command after the restart: the target is still watched on ticks."""
    settings = fresh_settings(bus, sim, data_dir)
    await put_session(bus, vault_for(settings), USER, sim.api_key, login(sim))
    sig = signal(f"watch-{os.getpid()}", qty=5, stop=147000, target=152000, strategy_id="watch-1")
    journal = Journal(data_dir / "journal.db")

    def held() -> int:
        return sum(t["quantity"] * (1 if t["transaction_type"] == "BUY" else -1)
                   for t in journal.trades(USER) if t["strategy_id"] == "watch-1")

    proc = spawn(settings, tmp_path / "worker.log")
    try:
        await wait_health(bus, "execution", timeout=30)
        await bus.js_publish(subjects.signals(USER), sig, msg_id=sig.id)
        await eventually(lambda: held() == 5 and [r for r in journal.open_orders(USER)
                                                  if r["strategy_id"] == "watch-1" and r["order_id"]],
                         timeout=30, what="the entry filled and its stop at the broker")
        proc.send_signal(signals.SIGKILL)
        assert proc.wait(10) == -signals.SIGKILL
        proc = spawn(settings, tmp_path / "worker.log")
        await wait_health(bus, "execution", timeout=30)
        sim.admin("price", {"underlying": "INFY", "price": 1530.0})
        tick = m.Tick(instrument_token=408065, mode="full", tradable=True, last_price=1530.0,
                      received_at=time.time_ns())

        async def ticked_out():
            await bus.publish(subjects.ticks(408065), tick)
            return held() == 0

        await eventually(ticked_out, timeout=30, what="the restarted worker closed the position at its target")
    finally:
        stop(proc)
        sim.admin("price", {"underlying": "INFY", "price": None})
