"""An order kta last heard OPEN and partly filled completes at the broker while the worker is down, and the day
closes before it is back: Kite's order book and trade book are the new day's, the order is gone from both. The rest
of its fills belongs to the order — its tag, its strategy — not to the account: journaled once as the order's own,
told to the strategy, and protected for the whole quantity. (Before: reconciliation expired it CANCELLED with only
the fills kta heard, and the rest was left to the positions cross-check — as the account's own "" or, for a
delivery (CNC) position, as the trader's own shares, never the strategy's.)

What is approximate, the broker's record of the rest being gone with its day: its price (what kta heard the order
fill at so far: its average) and its stamp (the order's last exchange time heard). Its quantity is the broker's (the
holdings now), its day the order's."""

import time

import msgspec
import pytest

from shared import messages as m
from shared import subjects
from tests.execution_worker.conftest import make_stack
from tests.execution_worker.kit import USER, broker, collected
from tests.helpers import eventually
from shared.kite.client import KiteClient
from tests.simkit import a_morning, login

pytestmark = pytest.mark.slow(seconds=40)
QUANTITY = 20_000  # INFY's five book levels hold at most 4,875 at a time: several books to fill it


async def ask(bus, cmd, timeout: float = 30.0):
    return await bus.request(subjects.cmd(USER, "execution", type(cmd).__struct_config__.tag), cmd, timeout=timeout)


async def test_an_order_completed_unheard_over_the_close_is_the_strategys_whole(bus, settling_sim, data_dir):
    sim = settling_sim
    outcomes = await collected(bus, subjects.outcomes(USER), m.StrategyOutcome)
    sim.admin("accounts/reset", {"user_id": USER})
    await a_morning(sim, by_hour=14)
    day = sim.trading_day()
    limits = m.RiskLimits(max_position_qty=QUANTITY, max_position_lots=QUANTITY)
    try:
        async with make_stack(bus, sim, data_dir, fresh_account=False) as (_, journal, kite):
            sim.admin("price", {"underlying": "INFY", "price": 5.0})  # a cheap INFY: one order, many books
            assert isinstance(await ask(bus, m.SetRiskLimits(limits=limits)), m.Ok)
            sim.faults(hold_fills=True)
            placed = await ask(bus, m.PlaceOrder(exchange=m.Exchange.NSE, tradingsymbol="INFY", quantity=QUANTITY,
                                                 transaction_type=m.TransactionType.BUY, product=m.Product.CNC,
                                                 strategy_id="late-1", client_id="late-1", stop_loss=450))
            assert isinstance(placed, m.Ok), placed
            (row,) = placed.data["orders"]
            sim.faults(hold_fills=False)
            await eventually(lambda: journal.trades_of_order(row["order_id"]), what="the first fills journaled")
            sim.faults(hold_fills=True)  # the rest waits ...
        heard = sum(t["quantity"] for t in journal.trades_of_order(row["order_id"]))  # all kta heard of it
        assert 0 < heard < QUANTITY, heard
        sim.admin("price", {"underlying": "INFY", "price": 5.0})  # (the stack's end let go of it) ...
        sim.faults(hold_fills=False)  # ... and the rest fills while the worker is down

        async def completed():
            view = (await broker(kite.order_history, row["order_id"]))[-1]
            return view if view.status == "COMPLETE" else None

        async def booked_away() -> bool:  # the broker's books are the new day's: the order is gone from them
            return row["order_id"] not in {o.order_id for o in await broker(kite.orders)}

        async with KiteClient(sim.api_key, login(sim), root=sim.root) as kite:  # (the stack's closed with it)
            final = await eventually(completed, what="the order complete at the broker")
            sim.advance_to(15, 29, 59)
            await eventually(lambda: sim.trading_day() != day, what="the sim's next session")
            await eventually(booked_away, what="the day's book settled away")
        seen = len(outcomes)
        heard_ids = {o.trade_id for o in outcomes}
        async with make_stack(bus, sim, data_dir, fresh_account=False) as (_, journal, kite):
            await ask(bus, m.GetPositions())

            def journaled() -> int:
                return sum(t["quantity"] for t in journal.trades_of_order(row["order_id"]))

            await eventually(lambda: journaled() == QUANTITY, timeout=30, what="the rest journaled as the order's")
            trades = journal.trades(USER)
            assert {t["strategy_id"] for t in trades} == {"late-1"}, trades  # nothing adopted as the account's own
            assert sum(t["quantity"] for t in trades) == QUANTITY  # once
            assert {t["day"] for t in trades} == {day}  # the day it filled, not the day it was read
            # priced from the order's last report kta heard (approximate, the broker's day being gone): the part it
            # counted filled is worth what its average leaves after the fills journaled, the rest its average — so
            # the order's journal is worth its average × the whole quantity (under a paisa a unit: the report's
            # average is paisa-floored). Before, the rest went at the average alone: when the report counted more
            # filled than the journal held, the fills of it kta never journaled went at the average too, and the
            # order's value fell short of its report by what the book's walk had cost.
            report = journal.order_by_tag(row["tag"])
            assert report["average_price"] >= 500
            value = sum(t["price"] * t["quantity"] for t in trades)
            assert abs(value - report["average_price"] * QUANTITY) < QUANTITY, (value, report, trades)

            def told() -> int:  # (a restart sends again what no strategy acknowledged: the fills kta heard before)
                rest = {o.trade_id: o for o in outcomes[seen:] if o.kind == "filled" and o.strategy_id == "late-1"
                        and o.trade_id not in heard_ids}
                return sum(o.quantity for o in rest.values())

            await eventually(lambda: told() >= QUANTITY - heard, what="the strategy told")
            assert told() == QUANTITY - heard, outcomes[seen:]
            positions = await ask(bus, m.GetStrategyPositions(strategy_id="late-1"))
            assert [(p["tradingsymbol"], p["quantity"]) for p in positions.data["positions"]] == [("INFY", QUANTITY)]

            async def protected() -> list:  # the delivery position's GTT sells what the strategy holds
                return [leg.quantity for g in await broker(kite.gtts) if g.status == "active"
                        and g.condition.tradingsymbol == "INFY" for leg in g.orders]

            assert await eventually(lambda: _all(protected, QUANTITY), what="the GTT for the whole position")
            # the WebSocket's word on it arrives late (relayed after all): the order completes, nothing twice
            await bus.js_publish(subjects.order_updates(USER), m.BrokerOrderUpdate(
                user_id=USER, received_at=time.time_ns(), order=msgspec.to_builtins(final)))
            await eventually(lambda: journal.order_by_tag(row["tag"])["state"] == "COMPLETE", what="the late update")
            await ask(bus, m.GetPositions())  # a pass after it: nothing more adopted
            assert sum(t["quantity"] for t in journal.trades(USER)) == QUANTITY
    finally:
        sim.reset_faults()
        sim.admin("price", {"underlying": "INFY", "price": None})


async def _all(read, quantity: int) -> bool:
    legs = await read()
    return bool(legs) and set(legs) == {quantity}


async def test_an_intraday_stop_expired_over_the_close_is_not_credited_with_the_brokers_square_off(
        bus, settling_sim, data_dir):
    """The other side of it: an MIS position and its stop, the worker down over the close. The broker squares the
    position off at the close and the stop goes with the day; the next day kta holds 5 the broker does not. That
    SELL is the broker's square-off (adopted as such), never the expired stop's unheard fill: an MIS position never
    outlives its day, so no next day's difference can be an MIS order's fill."""
    sim = settling_sim
    sim.admin("accounts/reset", {"user_id": USER})
    await a_morning(sim, by_hour=14)
    day = sim.trading_day()
    try:
        async with make_stack(bus, sim, data_dir, fresh_account=False) as (_, journal, kite):
            placed = await ask(bus, m.PlaceOrder(exchange=m.Exchange.NSE, tradingsymbol="INFY", quantity=5,
                                                 transaction_type=m.TransactionType.BUY, product=m.Product.MIS,
                                                 strategy_id="mis-1", client_id="mis-1", stop_loss=140000))
            assert isinstance(placed, m.Ok), placed
            await eventually(lambda: [o for o in journal.open_orders(USER) if o["kind"] == "stop_loss" and o["order_id"]
                                      and o["state"] == "TRIGGER PENDING"], what="its stop at the broker")
        sim.advance_to(15, 29, 59)  # the worker is down: the broker squares the MIS position off at its close
        await eventually(lambda: sim.trading_day() != day, what="the sim's next session")
        async with make_stack(bus, sim, data_dir, fresh_account=False) as (_, journal, kite):
            await ask(bus, m.GetPositions())
            await eventually(lambda: sum(t["quantity"] if t["transaction_type"] == "BUY" else -t["quantity"]
                                         for t in journal.trades(USER)) == 0, timeout=30, what="flat in the journal")
            events = [e["message"] for e in journal.risk_events(USER) if e["code"] in ("EXTERNAL_FILL", "UNHEARD_FILL")]
            assert len(events) == 1 and "square-off" in events[0] and "mis-1" in events[0], events
            assert {t["strategy_id"] for t in journal.trades(USER)} == {"mis-1"}
    finally:
        sim.reset_faults()
