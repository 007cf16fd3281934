"""Reconciliation against kite_sim: an order kta placed before a crash (at the broker, not in the
journal) is adopted, orders placed outside kta are counted, not adopted; a ticker reconnect triggers
a pass that brings a missed order to its final state; a lost submit is resolved by its tag."""

import time

from execution_worker import placing, reconcile
from execution_worker.engine import Desk
from shared.trading import planning as o
from shared.trading.risk import RiskManager
from shared import messages as m
from shared import subjects
from shared.kite import errors
from shared.kite.client import KiteClient
from tests.execution_worker.conftest import make_stack
from tests.execution_worker.kit import USER, broker, signal, fresh_desk
from tests.helpers import eventually

QUIET = {"reconcile_interval": 3600.0, "positions_interval": 3600.0}  # only the passes the test asks for


async def place_direct(kite: KiteClient, tag: str, side: str = "BUY") -> str:
    """An order sent straight to the broker, as the worker does before it journals the answer."""
    return await broker(kite.place_order, "regular", "NSE", "INFY", side, 1, "MIS", "MARKET", market_protection=-1,
                        tag=tag)


async def settled(kite: KiteClient, journal) -> None:
    """Every kta order of the (session-shared) account is known to this journal: the desk's first
    pass has adopted what earlier tests left behind."""
    async def known():
        try:
            book = await kite.orders()
        except errors.TooManyRequests:
            return False
        return all(journal.order_by_id(x.order_id) for x in book if o.is_kta_tag(x.tag))

    await eventually(known, timeout=60, what="the first reconciliation pass")


async def test_adopts_an_order_placed_before_a_crash_and_counts_external_ones(bus, sim, data_dir):
    async with make_stack(bus, sim, data_dir, **QUIET) as (settings, journal, kite):
        # the first pass adopts what earlier tests left in the session's account: it takes a while
        first = await bus.request(subjects.cmd(USER, "execution", "reconcile"), m.Reconcile(), timeout=90)
        assert isinstance(first, m.Ok), first
        await settled(kite, journal)
        tag = o.make_tag("crashed-before-journaling", "entry")
        order_id = await place_direct(kite, tag)
        await place_direct(kite, "manual1", side="SELL")  # the user's own order in Kite web
        reply = await bus.request(subjects.cmd(USER, "execution", "reconcile"), m.Reconcile(), timeout=30)
        assert isinstance(reply, m.Ok), reply
        assert reply.data["adopted"] == 1 and reply.data["external"] >= 1 and not reply.data["errors"]
        assert set(reply.data) >= {"matched", "mismatched", "adopted", "errors"}
        row = journal.order_by_tag(tag)
        assert row["order_id"] == order_id and row["kind"] == "adopted"
        assert journal.order_by_tag("manual1") is None
        await eventually(lambda: journal.order_by_tag(tag)["status"] == "COMPLETE"
                         and journal.trades_of_order(order_id), what="the adopted fill journaled")
        again = await bus.request(subjects.cmd(USER, "execution", "reconcile"), m.Reconcile(), timeout=30)
        assert again.data["adopted"] == 0 and again.data["mismatched"] == 0


async def test_a_ticker_reconnect_triggers_a_pass_that_finds_missed_updates(bus, sim, data_dir):
    async with make_stack(bus, sim, data_dir, **QUIET) as (settings, journal, kite):
        assert isinstance(await bus.request(subjects.cmd(USER, "execution", "reconcile"), m.Reconcile(), timeout=90),
                          m.Ok)
        await settled(kite, journal)
        sim.faults(hold_fills=True)
        tag = o.make_tag("missed-while-disconnected", "entry")
        order_id = await place_direct(kite, tag)
        await broker(kite.cancel_order, "regular", order_id)  # its updates went out while the ticker was down
        assert journal.order_by_tag(tag) is None
        await bus.js_publish(subjects.broker_events(USER), m.BrokerEvent(user_id=USER, kind="reconnected", ts=1))
        row = await eventually(lambda: journal.order_by_tag(tag), what="the reconnect pass")
        assert row["order_id"] == order_id
        await eventually(lambda: journal.order_by_tag(tag)["status"] == "CANCELLED", what="its final state")


async def test_a_lost_submit_is_resolved_by_its_tag_before_any_retry(bus, sim, data_dir):
    """The broker takes the order but the answer never arrives (a timeout): the order is UNKNOWN,
    and placing it again looks the tag up instead of sending a second order."""
    async with make_stack(bus, sim, data_dir, **QUIET) as (settings, journal, kite):
        impatient = KiteClient(sim.api_key, kite.access_token, root=sim.root, timeout=0.3)
        desk = Desk(USER, bus, journal, impatient, RiskManager(USER, None, journal), {}, -1, 0.5)
        sig = signal("lost-submit-1", qty=1)
        (req,) = o.signal_requests(sig, None, -1)
        sim.faults(latency_ms=800)  # the sim answers after the client gave up
        try:
            assert await placing.place(desk, req) is None
        finally:
            sim.reset_faults()
        assert journal.order_by_tag(req.tag)["state"] == "UNKNOWN"

        async def at_broker():
            try:
                return [x for x in await kite.orders() if x.tag == req.tag]
            except errors.TooManyRequests:
                return None

        (placed,) = await eventually(at_broker, what="the order the broker did take")
        assert await placing.place(desk, req) == placed.order_id  # resolved by the tag, not sent again
        assert len(await eventually(at_broker, what="the book")) == 1
        assert journal.order_by_tag(req.tag)["order_id"] == placed.order_id
        await impatient.aclose()


async def test_a_stop_placed_while_passes_read_the_book_is_not_expired(bus, sim, data_dir):
    """Under load two passes (the loop's and a ticker reconnect's) both read the broker's book, then a
    stop is placed, then both fold their reads: the stop is in neither, yet it is not "no longer in the
    broker's order book" — those reads began before it existed. (The soak's double stop: the stop was
    marked expired, protection placed a second one, and the first was left working after the
    square-off.) A read that began after the placement does prove an order gone."""
    desk, kite, journal = fresh_desk(sim, bus, data_dir)
    try:
        known = {x.order_id for x in desk.book.working() if x.order_id}
        started = time.monotonic()
        stale = await broker(kite.orders)  # both passes' reads, begun before the stop was placed
        req = m.OrderRequest(user_id=USER, exchange=m.Exchange.NSE, tradingsymbol="INFY", instrument_token=408065,
                             transaction_type=m.TransactionType.SELL, order_type=m.OrderType.SL, quantity=1,
                             product=m.Product.MIS, price=1390_00, trigger_price=1400_00, kind="stop_loss",
                             tag=o.make_tag(f"stale-read-{time.time_ns()}", "stop_loss"))
        order_id = await placing.place(desk, req)
        assert order_id
        for _ in range(2):
            result = await reconcile.fold(desk, stale, known, started)
            assert result.expired == 0
        assert desk.book.get(req.tag).is_working
        assert journal.order_by_tag(req.tag)["state"] != "CANCELLED"

        # really gone from the broker's book (its day ended): two reads begun after the placement say so
        gone = [x for x in await broker(kite.orders) if x.order_id != order_id]
        expired = 0
        for _ in range(2):
            known = {x.order_id for x in desk.book.working() if x.order_id}
            expired += (await reconcile.fold(desk, gone, known, time.monotonic())).expired
        assert expired == 1 and not desk.book.get(req.tag).is_working
    finally:
        await broker(kite.cancel_order, "regular", order_id)
        await kite.aclose()


async def test_a_fill_journaled_just_before_a_kill_is_counted_once_after_the_restart(bus, sim, data_dir):
    """A SIGKILL between the trade's commit and its order row's: the restarted worker finds the order
    owing the fill the journal already has. The position it rebuilt from the journal holds the fill
    once and keeps it once (the invariants test's square-off bought 16 for a short of 8: the fill was
    counted from the journal, then again when the order was made whole)."""
    desk, kite, journal = fresh_desk(sim, bus, data_dir)
    try:
        entry = o.signal_requests(signal(f"once-{time.time_ns()}", qty=5, strategy_id="once-1"), None, -1)[0]
        placed = await placing.place(desk, entry, "once-1")
        await placing.wait_final(desk, [desk.book.by_order_id(placed)], 10)
        assert desk.tracker.held("once-1", "NSE", "INFY")[0] == 5
        (trade,) = journal.trades_of_order(placed)
        with journal.conn:  # the order row as the kill left it: its trade journaled, the order not told
            journal.conn.execute("UPDATE orders SET fill_quantity = 0, trade_ids = '[]' WHERE order_id = ?", [placed])

        restarted = Desk(USER, bus, journal, kite, RiskManager(USER, None, journal), {}, -1, 0.5)
        order = restarted.book.by_order_id(placed)
        assert order.unjournaled == 5 and restarted.tracker.held("once-1", "NSE", "INFY")[0] == 5
        (at_broker,) = [x for x in await broker(kite.orders) if x.order_id == placed]
        await restarted.on_broker(at_broker)
        assert order.unjournaled == 0 and order.trade_ids == [trade["trade_id"]]
        assert restarted.tracker.held("once-1", "NSE", "INFY")[0] == 5
        assert len(journal.trades_of_order(placed)) == 1
        fills = [r for r in journal.outcomes(USER) if r["key"] == f"fill:{placed}:{trade['trade_id']}"]
        assert len(fills) == 1 and fills[0]["position"] == 5
    finally:
        await kite.aclose()
