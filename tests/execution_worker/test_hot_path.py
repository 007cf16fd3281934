"""Issue #18: the execution worker's hot path asks the broker only what it must. While the WebSocket
relays the user's order updates a placed order is not read back (the update is awaited), and fills
that come together are read from the broker once, not once per order."""

import asyncio
import sqlite3
import time

import pytest

from execution_worker import placing, signals
from execution_worker.engine import Desk
from execution_worker.order_gate import OrderGate
from shared import messages as m
from shared import subjects
from shared.kite import waits
from shared.kite.client import KiteClient
from shared.trading import planning
from shared.trading.order import OrderState
from shared.trading.risk import RiskManager
from tests.execution_worker.conftest import make_stack
from execution_worker.reconcile import reconcile
from shared.broker_sessions import put_session, vault_for
from tests.execution_worker.kit import USER, broker, fresh_desk, signal
from tests.helpers import eventually
from tests.simkit import login

pytestmark = pytest.mark.slow(seconds=21)

QUIET = {"reconcile_interval": 3600.0, "positions_interval": 3600.0}


def watched(sim, kite) -> tuple[KiteClient, list[str]]:
    """A client of the user's session whose requests the broker served are listed ("GET /orders/…").

    A 429 is not listed: the test's own polling shares the api_key's 10 reads/s with this client, and
    the client retries what Kite refused for the rate (the same read, not another)."""
    client = KiteClient(sim.api_key, kite.access_token, root=sim.root)
    seen: list[str] = []

    async def hook(response) -> None:
        if response.status_code != 429:
            seen.append(f"{response.request.method} {response.request.url.path}")

    client._http.event_hooks["response"].append(hook)
    return client, seen


async def filled(kite, order_id: str):
    history = await broker(kite.order_history, order_id)
    return history[-1] if history and history[-1].status == "COMPLETE" else None


async def test_fills_coming_together_share_one_trade_book_read(bus, sim, data_dir):
    async with make_stack(bus, sim, data_dir, **QUIET) as (settings, journal, kite):
        client, seen = watched(sim, kite)
        desk = Desk(USER, bus, journal, client, RiskManager(USER, None, journal), {}, -1, 0.5)
        ids = [await broker(kite.place_order, "regular", "NSE", "INFY", "BUY", qty, "MIS", "MARKET",
                            market_protection=-1, tag=f"hot{qty}") for qty in (1, 2, 3)]
        for order_id in ids:
            await eventually(lambda o=order_id: filled(kite, o), what=f"{order_id} filled")
        together = await asyncio.gather(*(desk.trades_of(o) for o in ids))
        assert seen == ["GET /trades"]  # one read for the three
        assert [sum(t.quantity for t in ts) for ts in together] == [1, 2, 3]
        assert all(t.order_id == o for o, ts in zip(ids, together) for t in ts)
        seen.clear()
        alone = await desk.trades_of(ids[0])
        assert seen == [f"GET /orders/{ids[0]}/trades"] and alone == together[0]
        await client.aclose()


async def test_a_placed_order_is_not_read_back_while_the_websocket_relays_updates(bus, sim, data_dir):
    async with make_stack(bus, sim, data_dir, **QUIET) as (settings, journal, kite):
        client, seen = watched(sim, kite)
        desk = Desk(USER, bus, journal, client, RiskManager(USER, None, journal), {}, -1, 0.5)
        (req,) = planning.signal_requests(signal("hot-ws", qty=1), None, -1)

        desk.ws_heard = time.monotonic()  # the ticker worker relays this user's updates
        order_id = await placing.place(desk, req)
        view = await eventually(lambda: filled(kite, order_id), what="the order filled at the broker")
        order = desk.book.get(req.tag)
        # filled at the broker, and the desk has not looked: it waits for the update (a read-back, as
        # before, would have moved the order within 0.1 s)
        assert not await placing.settled(desk, [order], 0.5) and order.state is OrderState.PLACED
        await desk.on_broker(view)  # the update the WebSocket relays
        assert journal.trades_of_order(order_id)  # the fill is journaled
        assert await placing.settled(desk, [order], 0.0)
        await eventually(lambda: not any(t.get_name() == f"confirm:{order_id}" for t in bus._tasks),
                         what="confirm() done")
        assert seen == ["POST /orders/regular", f"GET /orders/{order_id}/trades"]  # no GET /orders/<id>

        # without updates flowing, the order is read back (the safety net kept)
        desk.ws_heard = 0.0
        seen.clear()
        (req2,) = planning.signal_requests(signal("hot-nows", qty=1), None, -1)
        second = await placing.place(desk, req2)
        await eventually(lambda: f"GET /orders/{second}" in seen, what="the read-back")
        await eventually(lambda: journal.trades_of_order(second), what="its fill journaled from the read-back")
        await client.aclose()


async def test_a_signals_orders_are_timed_with_kites_waits_apart_from_ktas_own(bus, sim, data_dir):
    """bench/tick_to_order.py's split: per order, the waits on Kite before it was handed to the HTTP
    client — the order gate (Kite's 10 orders/s) and an earlier order's round trip — are counted
    apart, and only for the signal's own task (a read-back it spawns is not its wait)."""
    async with make_stack(bus, sim, data_dir, **QUIET) as (settings, journal, kite):
        now = [1_000.0]

        async def gate_sleep(seconds: float) -> None:  # the gate's wait: real time passes, its clock moves on
            await asyncio.sleep(0.05)
            now[0] += seconds

        gate = OrderGate(per_second=1, clock=lambda: now[0], sleep=gate_sleep)
        client = KiteClient(sim.api_key, kite.access_token, root=sim.root)
        desk = Desk(USER, bus, journal, client, RiskManager(USER, None, journal), {}, -1, 0.5, gate=gate)
        reqs = [planning.signal_requests(signal(f"timed{i}", qty=1), None, -1)[0] for i in (1, 2)]
        rows = []
        since = time.time_ns()
        with waits.started(since, lambda *row: rows.append(row)):
            for req in reqs:
                assert await placing.place(desk, req)
        first, second = rows
        assert [first[0], second[0]] == [reqs[0].tag, reqs[1].tag] and first[1] == second[1] == since
        assert first[4] == 0  # nothing awaited from the broker before the first order
        assert second[4] > 0  # the first order's round trip
        assert second[3] - first[3] >= 50_000_000  # the gate's wait for Kite's 1 order/s here
        assert 0 < first[2] - since - first[3] - first[4] <= second[2] - since  # kta's own time
        summary = waits.summary(rows)
        assert summary["orders"] == 2 and summary["budget_wait_ms"]["p99"] >= 50.0
        await client.aclose()


async def test_a_users_next_signal_is_decided_and_sent_while_their_exit_waits_for_its_stops_cancel(bus, sim, stack):
    """The decision is the only thing a user's signals queue behind: an exit waiting for its stop's
    cancel to be confirmed (every broker call slow here) holds up neither the decision nor the order of
    the same user's next signal."""
    _, journal, _ = stack
    entry = signal("overlap-in", qty=2, stop=147000, strategy_id="overlap-a")
    await bus.js_publish(subjects.signals(USER), entry, msg_id=entry.id)
    await eventually(lambda: [r for r in journal.orders(USER) if r["strategy_id"] == "overlap-a"
                              and r["kind"] == "stop_loss" and r["state"] in ("OPEN", "TRIGGER PENDING")],
                     timeout=20, what="the entry filled and its stop working")
    sim.faults(latency_ms=1500)  # every broker call: cancel, read-back, place
    try:
        out = signal("overlap-out", side="SELL", qty=2, intent="exit", strategy_id="overlap-a")
        nxt = signal("overlap-next", qty=1, strategy_id="overlap-b")
        await bus.js_publish(subjects.signals(USER), out, msg_id=out.id)
        await bus.js_publish(subjects.signals(USER), nxt, msg_id=nxt.id)
        await eventually(lambda: any(r["order_id"] for r in journal.orders_of_signal(nxt.id)), timeout=20,
                         what="the next signal's order placed")
        # its one round trip is done; the exit is still behind its stop's cancel and confirmation
        assert not any(r["order_id"] for r in journal.orders_of_signal(out.id))
        assert journal.signal_decision(out.id) == "accepted"
        await eventually(lambda: any(r["order_id"] for r in journal.orders_of_signal(out.id)), timeout=30,
                         what="the exit placed after its stop's cancel")
    finally:
        sim.faults(latency_ms=0)
    summary = await bus.request(subjects.cmd(USER, "execution", "get_execution_summary"),
                                m.GetExecutionSummary(timings=True))
    rows = {row[0]: row for row in summary.data["timings"]}
    for sig in (out, nxt):  # each order's stages in order: arrived, lock taken, decided, handed to the HTTP client
        (tag,) = [r["tag"] for r in journal.orders_of_signal(sig.id)]
        _, since, handed, budget, broker, arrived, locked, decided, stored = rows[tag]
        assert sig.created_at <= since <= arrived <= locked <= decided <= handed  # no tick: since it was handled
        assert sig.created_at // 1000 <= stored // 1000 <= arrived // 1000  # the stream's stamp: µs precision
    assert rows[tag][4] == 0  # the next signal's order awaited nothing from the broker (not the exit's cancel)


async def test_a_reconciliation_pass_that_finds_nothing_new_writes_nothing(bus, sim, data_dir):
    """Every pass reads the day's whole order book back: an order the broker reports as kta already has
    it is not written again (8 users' passes re-wrote hundreds of rows at once every 30 s, stalling the
    decisions queued behind them); one that changed is."""
    desk, kite, journal = fresh_desk(sim, bus, data_dir)
    try:
        (req,) = planning.signal_requests(signal("quiet-pass", qty=1), None, -1)
        order_id = await placing.place(desk, req)
        await eventually(lambda: filled(kite, order_id), what="the order filled at the broker")
        await reconcile(desk)  # the fill comes in
        assert desk.book.get(req.tag).state is OrderState.COMPLETE and journal.trades_of_order(order_id)
        seen: list[str] = []
        journal.conn.set_trace_callback(seen.append)
        await reconcile(desk)
        assert not [s for s in seen if s.startswith(("INSERT", "UPDATE", "DELETE"))], seen
        desk.book.get(req.tag).average_price = 1  # kta's copy differs from the broker's: corrected and written
        await reconcile(desk)
        assert any(s.startswith('INSERT INTO "orders"') for s in seen), seen
        assert journal.order_by_tag(req.tag)["average_price"] > 1
    finally:
        journal.conn.set_trace_callback(None)
        await kite.aclose()


async def test_a_decided_order_counts_against_the_limits_before_it_is_sent(bus, sim, data_dir):
    """The user's next signal is judged while the previous one's order is still on its way (its broker
    work runs beside the next decision): that order counts as pending from the moment it is decided, so
    two entries within the position limit alone but not together cannot both pass."""
    desk, kite, journal = fresh_desk(sim, bus, data_dir)  # the default limit: 100 shares an instrument
    try:
        first = signal("pending-a", qty=60, strategy_id="pending-1")
        sending = await signals.decide(desk, first)
        assert sending is not None and journal.signal_decision(first.id) == "accepted"
        second = signal("pending-b", qty=60, strategy_id="pending-2")  # 60 + 60 > 100 once the first is sent
        assert await signals.decide(desk, second) is None
        assert journal.signal(second.id)["code"] == "POSITION_SIZE"
        await sending  # the first goes out as decided
        (order,) = desk.book.of_signal(first.id)
        assert order.order_id and order.quantity == 60
    finally:
        await kite.aclose()


async def test_a_decision_and_its_order_commit_once_and_the_order_is_durable_before_its_post(bus, sim, data_dir):
    """Fewer commits per order (issue #18) without losing the crash guarantees: the decision and its order
    commit together, the order is committed SUBMITTING before its POST leaves (another connection — a
    restarted worker — sees it at that moment), and each event is committed with its order's row."""
    desk, kite, journal = fresh_desk(sim, bus, data_dir)
    other = sqlite3.connect(data_dir / "journal.db")
    at_post: list = []

    async def hook(request) -> None:
        if request.method == "POST" and request.url.path == "/orders/regular":
            at_post.append(other.execute("SELECT state FROM orders WHERE signal_id = 'together-1'").fetchall())

    kite._http.event_hooks["request"].append(hook)
    statements: list[str] = []
    journal.conn.set_trace_callback(statements.append)
    try:
        sig = signal("together-1", qty=1)
        sending = await signals.decide(desk, sig)
        assert statements.count("COMMIT") == 1  # the decision and its order: one transaction
        assert other.execute("SELECT decision FROM signals WHERE id = 'together-1'").fetchone() == ("accepted",)
        assert other.execute("SELECT count(*) FROM orders WHERE signal_id = 'together-1'").fetchone() == (1,)
        await sending
        assert at_post == [[("SUBMITTING",)]]  # durable before it left
        writes = [s for s in statements if s != "BEGIN "]
        events = [i for i, s in enumerate(writes) if s.startswith('INSERT OR IGNORE INTO "order_events"')]
        assert events and all(writes[i - 1].startswith('INSERT INTO "orders"') for i in events)  # row + event, one commit
        assert all(writes[i + 1] == "COMMIT" for i in events)
    finally:
        journal.conn.set_trace_callback(None)
        other.close()
        await kite.aclose()


async def test_an_entry_the_gate_admits_at_once_is_submitting_in_its_decisions_commit(bus, sim, data_dir):
    """One commit per entry signal, not two (issue #18): an entry the order gate admits as it is decided is
    journaled SUBMITTING in the decision's own commit (its row written once) — durable before its POST leaves, as
    before — and no other commit comes between the decision and the POST; one that must wait at the gate still gets
    its own."""
    desk, kite, journal = fresh_desk(sim, bus, data_dir)
    other = sqlite3.connect(data_dir / "journal.db")
    statements: list[str] = []
    at_post: list = []
    deciding = ["one-commit"]

    async def hook(request) -> None:
        if request.method == "POST" and request.url.path == "/orders/regular":
            at_post.append((statements.count("COMMIT"), other.execute(
                "SELECT signal_id, state FROM orders WHERE signal_id = ?", deciding).fetchall()))

    kite._http.event_hooks["request"].append(hook)
    journal.conn.set_trace_callback(statements.append)
    try:
        sending = await signals.decide(desk, signal("one-commit", qty=1))
        assert statements.count("COMMIT") == 1
        # its row written once, SUBMITTING — not INITIALIZED and then again in the same commit (~45 µs a signal)
        assert sum(s.startswith('INSERT INTO "orders"') for s in statements) == 1
        assert other.execute("SELECT state FROM orders WHERE signal_id = 'one-commit'").fetchall() == [("SUBMITTING",)]
        await sending
        assert at_post == [(1, [("one-commit", "SUBMITTING")])]  # durable, and nothing else committed before it left

        desk.gate = OrderGate(per_second=1)  # the next entry must wait for the window: SUBMITTING once through it
        desk.gate.admit(desk.gate.clock())
        statements.clear(), at_post.clear()
        deciding[0] = "waits-at-the-gate"
        sending = await signals.decide(desk, signal("waits-at-the-gate", qty=1))
        assert other.execute("SELECT state FROM orders WHERE signal_id = 'waits-at-the-gate'").fetchall() \
            == [("INITIALIZED",)]
        await sending
        assert [rows for _, rows in at_post] == [[("waits-at-the-gate", "SUBMITTING")]]  # its own commit, before it left
    finally:
        journal.conn.set_trace_callback(None)
        other.close()
        await kite.aclose()


async def test_a_decided_signals_order_is_handed_over_before_the_users_next_decision(bus, sim, data_dir):
    """A bar's signals reach the worker together (here: stored before it starts, so its first pull hands it
    all of them). Each decided signal's order is handed to the HTTP client before the user's next signal
    is decided — not queued behind every decision the loop has waiting (the bar's first order waited for its
    last signal's decision: issue #18). A decision that waited on Kite (its first price read) is not held
    to it: the loop did other work meanwhile."""
    users = (USER, "DEMO02")
    per_user = 5  # the pairs checked are those whose first waited on no Kite: enough of them on a busy machine
    sigs = [signal(f"turn-{u}-{i}", qty=1, user=u, strategy_id=f"turn-{i}") for i in range(per_user) for u in users]

    async def stored_first(settings) -> None:
        sim.admin("accounts/reset", {"user_id": "DEMO02"})
        await put_session(bus, vault_for(settings), "DEMO02", sim.api_key, login(sim, "DEMO02", "demo2"))
        for sig in sigs:
            await bus.js_publish(subjects.signals(sig.user_id), sig, msg_id=sig.id)

    async with make_stack(bus, sim, data_dir, before=stored_first, **QUIET) as (_, journal, _kite):
        await eventually(lambda: all(any(r["order_id"] for r in journal.orders_of_signal(s.id)) for s in sigs),
                         timeout=20, what="every signal's order placed")
        held = []
        for user in users:
            summary = await bus.request(subjects.cmd(user, "execution", "get_execution_summary"),
                                        m.GetExecutionSummary(timings=True))
            rows = sorted(summary.data["timings"], key=lambda row: row[6])  # by when its decision started
            assert len(rows) == per_user
            held += [(a, b) for a, b in zip(rows, rows[1:]) if a[4] == 0 and a[3] < 1e6]  # a waited on no Kite
    assert len(held) >= 2  # the users' later signals: their prices are known, nothing to ask Kite
    for (tag, _, handed, *_), (nxt, *_, locked, _, _) in held:
        assert handed <= locked, f"{nxt} was decided before {tag}'s order was handed to the HTTP client"


async def test_an_order_event_is_told_without_waiting_for_the_streams_ack(bus, sim, data_dir):
    """An order's event is journaled before it is told; KTA_ORDERS stores what is published on its subject, and
    the desk does not wait for the stream's ack (a round trip an event, 4.6 events a signal: issue #18). With the
    stream gone, the event still reaches the subject's subscribers and the desk goes on."""
    desk, kite, journal = fresh_desk(sim, bus, data_dir)
    heard: list[m.OrderEvent] = []

    async def on_event(ev, msg):
        heard.append(ev)

    await bus.subscribe(subjects.orders(USER), m.OrderEvent, on_event)
    await bus.sync()
    sig = signal("told-1")
    order = desk.new_order(signals.requests(desk, sig, sig.quantity)[0], sig.strategy_id)
    await bus.js.delete_stream(subjects.STREAM_ORDERS)
    try:
        await asyncio.wait_for(desk.publish(order), 10)  # before: NoStreamResponseError, nothing told
        await eventually(lambda: [ev for ev in heard if ev.tag == order.tag], what="the order's event")
        assert [e["state"] for e in journal.order_events(order.tag)] == ["INITIALIZED"]  # journaled first
    finally:
        await bus.ensure_streams()
        await kite.aclose()


async def test_an_orders_answer_is_journaled_after_the_signals_being_decided(bus, sim, data_dir):
    """Decisions first (execution_worker/decisions_first.py): while a signal is being decided, an order already
    sent has its answer journaled only once that decision is done — a bar's signals are not kept waiting
    behind the follow-up work of the orders decided before them."""
    async with make_stack(bus, sim, data_dir, **QUIET) as (settings, journal, kite):
        client = KiteClient(sim.api_key, kite.access_token, root=sim.root)
        desk = Desk(USER, bus, journal, client, RiskManager(USER, None, journal), {}, -1, 0.5)
        (req,) = planning.signal_requests(signal("first-sent", qty=1), None, -1)
        with desk.first.decision():  # another signal being decided
            sending = asyncio.ensure_future(placing.place(desk, req))
            await eventually(lambda: desk.latencies_ms, what="the broker's answer in")
            order = desk.book.get(req.tag)
            assert order.state is OrderState.SUBMITTING and not order.order_id and not sending.done()
        order_id = await sending
        assert order_id and order.order_id == order_id and order.state is not OrderState.SUBMITTING
        await client.aclose()


async def test_follow_up_work_waits_for_decisions_at_most_a_while(monkeypatch):
    from execution_worker import decisions_first

    first = decisions_first.DecisionsFirst()
    await first.follow_up()  # nothing being decided: at once
    with first.decision():
        waiting = asyncio.ensure_future(first.follow_up())
        with first.decision():  # two signals
            await asyncio.sleep(0)
        with first.aside():  # waiting for the user's lock held by a command: follow-up work may run
            await waiting
        waiting = asyncio.ensure_future(first.follow_up())
        await asyncio.sleep(0)
        assert not waiting.done()
    await waiting
    monkeypatch.setattr(decisions_first, "MOST", 0.05)
    with first.decision():  # a decision that never ends holds nothing for longer than MOST
        await first.follow_up()
    assert first.deciding == 0 and not first._waiters


async def test_a_shared_read_of_the_broker_counts_as_the_brokers_wait(bus, sim, data_dir):
    """An exit waiting for its stop's cancel reads the order back through a read shared with other askers (a task of
    its own: execution_worker/shared_reads.py). That wait is the broker's in the decision's split, not kta's own time:
    uncounted, the one-api_key scenario of bench/tick_to_order.py showed seconds of "internal" time per exit."""
    async with make_stack(bus, sim, data_dir, **QUIET) as (settings, journal, kite):
        client = KiteClient(sim.api_key, kite.access_token, root=sim.root)
        desk = Desk(USER, bus, journal, client, RiskManager(USER, None, journal), {}, -1, 0.5)
        (req,) = planning.signal_requests(signal("read-shared", qty=1), None, -1)
        assert await placing.place(desk, req)
        order = desk.book.get(req.tag)
        with waits.started(time.time_ns(), lambda *row: None) as watch:
            assert await placing.refresh(desk, order)
        assert watch.broker > 0 and watch.budget == 0
        await client.aclose()
