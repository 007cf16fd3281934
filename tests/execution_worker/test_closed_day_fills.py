"""Kite's orders and trades are the day's only: once the broker has moved to its next session, an order of
the day before is "Couldn't find that `order_id`", its trades too. An order that filled at the close and whose
fills kta had not read yet must still be journaled — from its own final report (filled quantity at its average
price) — or they are owed for ever: the position off the broker's, its protection held back by a "closing"
order that never closes (soak seed 19: a flatten completed at 15:29:07, its fills read after the next open)."""

import asyncio
import time

import msgspec
import pytest

from execution_worker import signals
from execution_worker.engine import Desk
from execution_worker.journal import Journal
from shared import messages as m
from shared.exchange_clock import ExchangeClock
from shared.kite.client import KiteClient
from shared.trading.order import OrderState
from shared.trading.risk import RiskManager
from tests.execution_worker.kit import USER, broker, signal
from tests.helpers import eventually
from tests.simkit import a_morning, login

pytestmark = pytest.mark.slow(seconds=30)


async def test_an_order_filled_at_the_close_and_read_after_the_next_open_is_journaled_from_its_report(
        bus, settling_sim, data_dir):
    sim = settling_sim
    sim.reset_faults()
    sim.admin("accounts/reset", {"user_id": USER})
    await a_morning(sim, by_hour=14)
    day = sim.trading_day()
    clock = ExchangeClock()  # the worker's: what it hears of the exchange's time
    clock.heard(sim.get("/sim/clock").json()["epoch"])
    journal = Journal(data_dir / "journal.db", day_clock=clock.now)
    kite = KiteClient(sim.api_key, login(sim), root=sim.root)
    desk = Desk(USER, bus, journal, kite, RiskManager(USER, None, journal), {}, -1, 0.5)
    desk.exchange = clock
    try:
        entry = msgspec.structs.replace(signal(f"closed-{time.time_ns()}", qty=3, strategy_id="closed-1"),
                                        product=m.Product.CNC)  # carried over the close (MIS would be squared off)
        async with desk.trade_reads.reading:  # its fills are read once the broker is in its next session
            await signals.on_signal(desk, entry)
            (order,) = await eventually(lambda: [o for o in desk.book if o.strategy_id == "closed-1"
                                                 and o.state is OrderState.COMPLETE and o.unjournaled == 3],
                                        what="the entry filled, its fills owed")
            assert order.day == day and order.average_price > 0
            sim.advance_to(15, 29, 59)
            await eventually(lambda: sim.trading_day() != day, what="the sim's next session")

            async def booked_away() -> bool:  # the broker's book is the new day's: the order is gone from it
                return order.order_id not in {o.order_id for o in await broker(kite.orders)}

            await eventually(booked_away, what="the day's book settled away")
            clock.heard(sim.get("/sim/clock").json()["epoch"])  # (the worker asks a quote's time when quiet)
        (trade,) = await eventually(lambda: journal.trades_of_order(order.order_id), what="the fills journaled")
        assert (trade["quantity"], trade["price"], trade["day"]) == (3, order.average_price, day), trade
        assert desk.tracker.held("closed-1", "NSE", "INFY")[0] == 3
        assert not desk.book.owing()
    finally:
        sim.reset_faults()
        await kite.aclose()


async def test_the_rest_of_an_order_partly_journaled_before_the_close_is_journaled_at_what_its_average_leaves(
        bus, settling_sim, data_dir):
    """Part of a big order filled and was journaled; the rest filled after the price moved and was still unread
    when the day closed. Its report's average covers the whole order, so journaling the rest at the average put
    the journal's value of the order off by (average - the rest's true price) x the rest: the rest is what
    filled x average leaves once the journaled part is taken off (closed_day.py)."""
    sim = settling_sim
    sim.reset_faults()
    sim.admin("accounts/reset", {"user_id": USER})
    await a_morning(sim, by_hour=14)
    day = sim.trading_day()
    sim.admin("price", {"underlying": "INFY", "price": 5.0})  # a cheap INFY: an order bigger than many books
    clock = ExchangeClock()
    clock.heard(sim.get("/sim/clock").json()["epoch"])
    journal = Journal(data_dir / "journal-partly.db", day_clock=clock.now)
    kite = KiteClient(sim.api_key, login(sim), root=sim.root)
    limits = m.RiskLimits(max_position_qty=200_000)
    desk = Desk(USER, bus, journal, kite, RiskManager(USER, limits, journal), {}, -1, 0.5)
    desk.exchange = clock
    quantity = 100_000  # five levels of INFY's book hold at most 4,875: twenty books and more to fill it
    try:
        entry = msgspec.structs.replace(signal(f"partly-{time.time_ns()}", qty=quantity, strategy_id="partly-1"),
                                        product=m.Product.CNC)
        sim.faults(hold_fills=True)
        await signals.on_signal(desk, entry)
        (order,) = await eventually(lambda: [o for o in desk.book if o.strategy_id == "partly-1" and o.order_id],
                                    what="the entry placed")
        sim.faults(hold_fills=False)
        await eventually(lambda: journal.trades_of_order(order.order_id), what="the first fills journaled")
        sim.faults(hold_fills=True)
        async with desk.trade_reads.reading:  # the rest is read once the broker is in its next session
            first = sum(t["quantity"] for t in journal.trades_of_order(order.order_id))
            assert first < quantity, "the order filled before the test held its fills"
            sim.admin("price", {"underlying": "INFY", "price": 4.5})  # the rest fills ten per cent lower
            sim.faults(hold_fills=False)

            async def filled_at_the_broker():  # (the desk's confirm waits on the fills' read: the broker says)
                view = (await broker(kite.order_history, order.order_id))[-1]
                return view if view.status == "COMPLETE" else None

            # the broker's COMPLETE reaches the desk as the order-update feed brings it: applied, then its fills
            # wait for the read the test holds
            update = asyncio.create_task(desk.on_broker(await eventually(filled_at_the_broker, what="the rest filled")))
            await eventually(lambda: order.state is OrderState.COMPLETE, what="the desk heard it filled")
            broker_value = sum(round(t.average_price * 100) * t.quantity for t in await broker(kite.trades)
                               if t.order_id == order.order_id)
            sim.advance_to(15, 29, 59)
            await eventually(lambda: sim.trading_day() != day, what="the sim's next session")

            async def booked_away() -> bool:
                return order.order_id not in {o.order_id for o in await broker(kite.orders)}

            await eventually(booked_away, what="the day's book settled away")
            clock.heard(sim.get("/sim/clock").json()["epoch"])
        await eventually(lambda: not order.unjournaled, what="the rest journaled")
        await update
        trades = journal.trades_of_order(order.order_id)
        value = sum(t["quantity"] * t["price"] for t in trades)
        assert sum(t["quantity"] for t in trades) == quantity and {t["day"] for t in trades} == {day}
        assert value == order.average_price * quantity, (value, order.average_price, trades)
        # the report's average is the broker's floored to a paisa: the one thing approximate, under a paisa a unit
        assert 0 <= broker_value - value < quantity, (broker_value, value)
        assert desk.tracker.held("partly-1", "NSE", "INFY")[0] == quantity
    finally:
        sim.reset_faults()
        sim.admin("price", {"underlying": "INFY", "price": None})
        await kite.aclose()
