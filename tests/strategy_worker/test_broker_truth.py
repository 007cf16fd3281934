"""Broker truth end to end: the strategy worker, the execution worker and the ticker worker against
kite_sim. A strategy's entries are placed and filled at the broker and only the fills move its
position; an entry refused by risk (above the position limit) leaves it flat and its "exit" is never
sent; the strategy's book equals the journal's and the broker's; a restarted strategy worker comes back
holding exactly that, from its store or, when the store lost it, from the execution journal."""

import sqlite3
from collections import defaultdict
from typing import Annotated

import msgspec
import pytest
from msgspec import Meta

from shared import messages as m
from shared import subjects
from shared.kite.client import KiteClient
from shared.broker_sessions import put_session, vault_for
from shared.messages import Tick, TransactionType
from strategy_worker.main import amain as strategy_main
from strategy_worker.strategies import registry
from strategy_worker.strategies.base import BaseStrategy
from tests.helpers import eventually, running, stack_settings, wait_health
from tests.simkit import login
from tests.stackkit import workers

pytestmark = pytest.mark.slow(seconds=20)

USER = "DEMO01"
WIPRO, ITC = 969473, 424961
ORDERS: dict[int, list[str]] = defaultdict(list)  # symbol -> what the test asks its instance to do next


class Scripted(BaseStrategy):
    """Does what the test asks, on the next tick of its symbol: 'enter' (entry() — refused by the
    base while held or in flight) or 'exit' (exit() — sized from the real position)."""

    name = "test_scripted"
    description = "test"

    class Params(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
        quantity: Annotated[int, Meta(ge=1, le=100, description="Shares")] = 5

    def on_tick(self, tick: Tick) -> list:
        asked = ORDERS[self.token]
        if not asked:
            return []
        what = asked.pop(0)
        if what == "enter":
            return [self.entry(TransactionType.BUY, 0.6, "asked to enter", 0.05, price=tick.last_price)]
        return [self.exit(0.8, "asked to exit")]


@pytest.fixture(autouse=True)
def scripted():
    registry.register(Scripted)
    ORDERS.clear()
    yield
    registry.unregister(Scripted.name)


async def test_positions_follow_the_broker_through_fills_rejections_and_a_restart(bus, sim, data_dir):
    sim.reset_faults()
    settings = stack_settings(bus.nc.connected_url.geturl(), data_dir, sim, seed_days=0, seed_interval="minute",
                              reconcile_interval=1.0, positions_interval=1.0, risk={"max_position_qty": 8})
    token = login(sim)
    await put_session(bus, vault_for(settings), USER, sim.api_key, token)
    signals: list = []

    async def on_signal(sig, msg):
        signals.append(sig)

    await bus.subscribe(subjects.signals(USER), m.AnySignal, on_signal)

    async def book() -> dict:
        listing = await bus.request(subjects.cmd(USER, "strategy", "list"), m.ListStrategies())
        return {int(t): q for r in listing.data for t, q in r["position"].items()}

    async def journal() -> dict:
        reply = await bus.request(subjects.cmd(USER, "execution", "strategy_positions"), m.GetStrategyPositions())
        return {p["instrument_token"]: p["quantity"] for p in reply.data["positions"]
                if p["quantity"] and p["strategy_id"] in ("scr", "scr10")}

    async with KiteClient(sim.api_key, token, root=sim.root) as kite:
        async def broker() -> dict:
            return {p.instrument_token: p.quantity for p in (await kite.positions()).net if p.product == "MIS"}

        before = await broker()

        def moved(now: dict) -> dict:
            return {t: now.get(t, 0) - before.get(t, 0) for t in (WIPRO, ITC) if now.get(t, 0) != before.get(t, 0)}

        async with workers(settings, bus):
            for sid, token, qty in (("scr", WIPRO, 5), ("scr10", ITC, 10)):  # 10 is above the limit of 8
                ok = await bus.request(subjects.cmd(USER, "strategy", "add"), m.AddStrategy(
                    strategy="test_scripted", tokens=[token], strategy_id=sid, params={"quantity": qty}))
                assert isinstance(ok, m.Ok), ok
            started = await bus.gather(subjects.cmd(USER, "live", "start"), m.StartLive(tokens=[WIPRO, ITC]),
                                       expect={"ticker", "strategy", "execution"}, timeout=20)
            assert all(isinstance(r, m.Ok) for r in started.values()), started

            ORDERS[WIPRO] += ["enter", "enter"]  # the second is asked while the first is in flight or held
            await eventually(lambda: _eq(book(), {WIPRO: 5}), timeout=30, what="WIPRO's entry filled")
            await eventually(lambda: not ORDERS[WIPRO], what="the second 'enter' consumed")
            assert [s.tradingsymbol for s in signals] == ["WIPRO"]  # never a second entry

            ORDERS[ITC].append("enter")
            await eventually(lambda: len(signals) == 2, timeout=30, what="ITC's entry sent")
            await eventually(lambda: _listing_flight_free(bus), timeout=30, what="ITC's refusal heard")
            refused = await bus.request(subjects.cmd(USER, "strategy", "list"), m.ListStrategies())
            assert {r["strategy_id"]: r["position"] for r in refused.data} == {"scr": {str(WIPRO): 5}, "scr10": {}}
            ORDERS[ITC].append("exit")  # flat: nothing to exit, nothing may be sent
            await eventually(lambda: not ORDERS[ITC], what="the ITC 'exit' consumed")
            assert [s.tradingsymbol for s in signals] == ["WIPRO", "ITC"]
            assert await book() == await journal() == {WIPRO: 5}
            await eventually(lambda: _eq(_moved(broker, moved), {WIPRO: 5}), what="the broker's book")

        # the strategy worker alone restarts (the others keep running in a fresh stack below)
        async with running(strategy_main, settings):
            await wait_health(bus, "strategy")
            assert await book() == {WIPRO: 5}

        # the strategy store loses its books (a restore from an old backup): the journal has the truth
        with sqlite3.connect(data_dir / "strategies.db") as db:
            db.execute("DELETE FROM instances")
        async with workers(settings, bus):
            await eventually(lambda: _eq(book(), {WIPRO: 5}), timeout=30, what="positions adopted from the journal")
            await bus.gather(subjects.cmd(USER, "live", "start"), m.StartLive(tokens=[WIPRO, ITC]),
                             expect={"ticker", "strategy", "execution"}, timeout=20)
            ORDERS[WIPRO].append("exit")
            await eventually(lambda: _eq(book(), {}), timeout=30, what="WIPRO's exit filled")
            exits = [s for s in signals if s.intent == "exit"]
            assert [(s.tradingsymbol, s.transaction_type, s.quantity) for s in exits] == [
                ("WIPRO", TransactionType.SELL, 5)]
            assert await journal() == {}
            await eventually(lambda: _eq(_moved(broker, moved), {}), what="the broker flat again")
            await bus.gather(subjects.cmd(USER, "live", "stop"), m.StopLive(),
                             expect={"ticker", "strategy", "execution"}, timeout=20)


async def _eq(value, expected) -> bool:
    return (await value) == expected


async def _moved(broker, moved) -> dict:
    return moved(await broker())


async def _listing_flight_free(bus) -> bool:
    listing = await bus.request(subjects.cmd(USER, "strategy", "list"), m.ListStrategies())
    return not any(r["in_flight"] for r in listing.data)

