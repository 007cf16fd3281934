"""A user's token is asked of the ticker worker once while it streams it (issue #18): a strategy that reopens a
position on the same instrument was a request to the ticker (and the ticker's save of its state) every time."""

import asyncio
import time

from execution_worker import signals
from execution_worker.engine import Desk
from execution_worker.journal import Journal
from execution_worker.marks import TickMarks
from shared import messages as m
from shared import subjects
from shared.broker_sessions import put_session, vault_for
from shared.kite.client import KiteClient
from shared.trading.risk import RiskManager
from tests.execution_worker.kit import USER, signal
from tests.helpers import eventually, running, stack_settings, wait_health
from tests.simkit import login
from ticker_worker.main import amain as ticker_main

INFY = 408065


async def test_a_reopened_position_asks_the_ticker_for_its_ticks_once_until_the_users_stop(bus, sim, data_dir):
    sim.reset_faults()
    sim.admin("accounts/reset", {"user_id": USER})
    settings = stack_settings(bus.nc.connected_url.geturl(), data_dir, sim)
    token = login(sim)
    kite = KiteClient(sim.api_key, token, root=sim.root)
    journal = Journal(data_dir / "journal.db")
    desk = Desk(USER, bus, journal, kite, RiskManager(USER, m.RiskLimits(), journal), {}, -1, 0.5)
    marks = TickMarks(bus)
    asks = await bus.nc.subscribe(subjects.cmd(USER, "ticker", "subscribe"))  # every ask, as the ticker hears it
    tracked = asyncio.Queue()

    async def on_fills(d: Desk) -> None:
        await marks.track(d)
        await tracked.put(d.tracker.net_quantity("NSE", "INFY"))

    async def held(quantity: int) -> None:
        while await asyncio.wait_for(tracked.get(), 30) != quantity:
            pass
        for task in [t for t in bus._tasks if t.get_name().startswith("marks-subscribe")]:
            await task  # its request answered by the ticker: the ask is in ``asks`` (it came before the answer)

    desk.on_fills = on_fills
    async with running(ticker_main, settings):
        await wait_health(bus, "ticker")
        await put_session(bus, vault_for(settings), USER, sim.api_key, token)
        try:
            for i, (side, intent, quantity) in enumerate([("BUY", "entry", 5), ("SELL", "exit", 0)] * 2):
                await signals.on_signal(desk, signal(f"asked-{time.time_ns()}-{i}", side=side, qty=5, intent=intent))
                await held(quantity)
            assert asks.pending_msgs == 1  # the first position's; the second's was the ticker's already
            assert (USER, INFY) in marks.asked

            marks.stopped(USER)  # the trader's Stop: the ticker drops the user's tokens
            await signals.on_signal(desk, signal(f"asked-{time.time_ns()}-after", side="BUY", qty=5))
            await held(5)
            assert asks.pending_msgs == 2  # asked again
        finally:
            await marks.forget(USER)
            await asks.unsubscribe()
            left = desk.tracker.net_quantity("NSE", "INFY")
            if left:  # leave the session's account flat
                await kite.place_order("regular", "NSE", "INFY", "SELL" if left > 0 else "BUY", abs(left), "MIS",
                                       "MARKET", market_protection=-1, tag="askedflat")
            await kite.aclose()
