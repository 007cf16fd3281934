"""Ticks of an open position feed the kill switch at once: a desk's fill subscribes the instrument's
ticks, a losing tick on NATS trips the switch (source "tick") without waiting for the broker poll."""

import asyncio
import time

from execution_worker import signals
from execution_worker.engine import Desk
from execution_worker.journal import Journal
from execution_worker.marks import TickMarks
from shared.trading.risk import RiskManager
from shared import messages as m
from shared import subjects
from shared.kite.client import KiteClient
from tests.execution_worker.kit import USER, signal
from tests.helpers import eventually
from tests.simkit import login


async def test_a_losing_tick_trips_the_kill_switch_of_the_desk_holding_it(bus, sim, data_dir):
    sim.reset_faults()
    sim.admin("accounts/reset", {"user_id": USER})  # a fresh journal on an account that never traded
    sim.admin("price", {"underlying": "INFY", "price": 1500.0})
    kite = KiteClient(sim.api_key, login(sim), root=sim.root)
    journal = Journal(data_dir / "journal.db")
    risk = RiskManager(USER, m.RiskLimits(max_daily_loss=50_00), journal)  # ₹50
    desk = Desk(USER, bus, journal, kite, risk, {}, -1, 0.5)
    marks = TickMarks(bus)
    moved: asyncio.Queue = asyncio.Queue()

    async def on_risk(d, state):
        await moved.put(state)

    desk.on_risk, desk.on_fills = on_risk, marks.track
    try:
        entry = signal(f"marks-{time.time_ns()}", qty=10)
        await signals.on_signal(desk, entry)
        await eventually(lambda: desk.tracker.net_quantity("NSE", "INFY") == 10, what="the entry's fill tracked")
        await eventually(lambda: 408065 in marks.subs, what="ticks of INFY followed")
        assert risk.state is m.KillSwitchState.ACTIVE and moved.empty()

        tick = m.Tick(instrument_token=408065, mode="full", tradable=True, last_price=1480.0)  # -₹20 a share
        await bus.publish(subjects.ticks(408065), tick)
        state = await eventually(lambda: not moved.empty() and moved.get_nowait(), what="the switch moved")
        assert state.state is m.KillSwitchState.HALTED and "(tick)" in state.reason
        assert state.day_pnl <= -200_00 + 10 * 100  # the tick's loss, less at most the spread paid
        assert risk.validate_signal(signal("marks-after")).code == "KILL_SWITCH_HALTED"

        exit_ = signal(f"marks-exit-{time.time_ns()}", side="SELL", qty=10, intent="exit")
        await signals.on_signal(desk, exit_)  # HALTED lets a true reduction through
        assert journal.signal_decision(exit_.id) == "accepted"
        await eventually(lambda: desk.tracker.net_quantity("NSE", "INFY") == 0, what="the exit's fill tracked")
    finally:
        await marks.forget(USER)
        assert not marks.subs
        held = desk.tracker.net_quantity("NSE", "INFY")
        if held:  # leave the session's account flat
            await kite.place_order("regular", "NSE", "INFY", "SELL" if held > 0 else "BUY", abs(held), "MIS",
                                   "MARKET", market_protection=-1, tag="marksflat")
        await kite.aclose()
        sim.admin("price", {"underlying": "INFY", "price": None})
