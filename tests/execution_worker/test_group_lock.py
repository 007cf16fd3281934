"""An option group is decided like any signal — under the user's lock, one decision at a time — but its legs
are placed and waited for outside that lock: the user's next signals are not held up by a group waiting for
fills (an 8-strategy session measured a 3.8 s tick → order p50 that way), and they are judged with the group's
legs on their way, placed or not yet."""

import asyncio
import time

import pytest

from execution_worker import order_group
from shared import messages as m
from shared import subjects
from shared.trading.hedge import entry_order
from shared.trading.order import OrderState
from tests.execution_worker.conftest import make_stack
from tests.execution_worker.kit import USER, fresh_desk, nifty_chain, option_leg, signal
from tests.helpers import eventually

pytestmark = pytest.mark.slow(seconds=12)


async def a_spread(kite, strategy_id: str) -> m.SignalGroup:
    """A one-lot bear call spread on NIFTY (its hedge placed first)."""
    calls = await nifty_chain(kite, "CE")
    return m.SignalGroup(id=f"{strategy_id}-{time.time_ns()}", user_id=USER, strategy_id=strategy_id,
                         strategy="bear_call_spread", structure="bear_call_spread", underlying="NIFTY",
                         legs=entry_order([option_leg(calls[26200.0], "BUY", True),
                                           option_leg(calls[26000.0], "SELL", False)]))


async def resting_spread(bus, sim, journal, kite, strategy_id: str) -> tuple[m.SignalGroup, m.Leg, dict]:
    """A spread sent while the sim holds fills: (the group, its short leg, its hedge's order resting OPEN)."""
    group = await a_spread(kite, strategy_id)
    sim.faults(hold_fills=True)
    await bus.js_publish(subjects.signals(USER), group, msg_id=group.id)
    (hedge,) = await eventually(lambda: [r for r in journal.orders_of_group(group.id) if r["state"] == "OPEN"],
                                what="the spread's hedge resting at the broker")
    return group, next(leg for leg in group.legs if not leg.is_hedge), hedge


def on_the_leg(leg: m.Leg, strategy_id: str, side: str, intent: str) -> m.Signal:
    """A single-instrument signal of ``strategy_id`` on the leg's option, for one leg's quantity."""
    return m.Signal(id=f"{strategy_id}-{intent}-{time.time_ns()}", user_id=USER, strategy_id=strategy_id,
                    strategy="manual", exchange=m.Exchange.NFO, tradingsymbol=leg.tradingsymbol,
                    instrument_token=leg.instrument_token, transaction_type=m.TransactionType(side),
                    quantity=leg.quantity, product=leg.product, order_type=m.OrderType.MARKET, intent=intent,
                    created_at=time.time_ns())


async def test_a_signal_is_decided_while_a_groups_leg_still_works_and_counts_the_legs_to_come(bus, sim, data_dir):
    """A bear call spread's hedge rests at the broker (the group waits up to 60 s for it). Another strategy's
    signal — one more lot short of the spread's short call — is decided meanwhile (before: it waited for the
    group's lock until the hedge filled or timed out), and refused: with the short leg still to come the account
    would be two lots short where the limit is one."""
    async with make_stack(bus, sim, data_dir, group_fill_timeout=60.0) as (_, journal, kite):
        limits = m.RiskLimits(max_position_lots=1)
        assert isinstance(await bus.request(subjects.cmd(USER, "risk", "limits"), m.SetRiskLimits(limits=limits)), m.Ok)
        group, short, hedge = await resting_spread(bus, sim, journal, kite, "glock-1")
        more = on_the_leg(short, "glock-1b", "SELL", "entry")
        await bus.js_publish(subjects.signals(USER), more, msg_id=more.id)
        decided = await eventually(lambda: journal.signal(more.id), what="the next signal decided")
        assert journal.order_by_tag(hedge["tag"])["state"] == "OPEN"  # the group still waits for its hedge
        assert journal.group(group.id)["state"] == "placing"
        assert (decided["decision"], decided["code"]) == ("refused", "POSITION_SIZE"), decided
        assert "2 lots, limit 1" in decided["reason"]  # the short leg not yet placed counted
        sim.faults(hold_fills=False)
        await eventually(lambda: journal.group(group.id)["state"] == "completed", timeout=30, what="the spread in")
        out = m.SignalGroup(id=f"{group.id}-exit", user_id=USER, strategy_id="glock-1", strategy="bear_call_spread",
                            structure="bear_call_spread", underlying="NIFTY", intent="exit",
                            legs=[m.Leg(**{**{f: getattr(leg, f) for f in leg.__struct_fields__},
                                           "transaction_type": leg.transaction_type.opposite}) for leg in group.legs])
        await bus.js_publish(subjects.signals(USER), out, msg_id=out.id)
        await eventually(lambda: (journal.group(out.id) or {}).get("state") == "completed", timeout=30,
                         what="the spread out")


async def test_a_strategys_next_signal_waits_for_its_own_group_and_the_others_do_not(bus, sim, data_dir):
    """A spread's hedge rests; the same strategy buys its short back (an exit) and another strategy enters. The
    other strategy is decided at once; the exit waits until the spread has ended and is judged on what it filled
    — decided earlier it was refused on a book that did not hold the short yet (or, had some legs filled, it would
    close those and let the group open the rest: a short whose wing was sold, naked)."""
    async with make_stack(bus, sim, data_dir, group_fill_timeout=60.0) as (_, journal, kite):
        group, short, _ = await resting_spread(bus, sim, journal, kite, "glock-3")
        back = on_the_leg(short, "glock-3", "BUY", "exit")
        other = signal(f"glock-other-{time.time_ns()}", qty=1, strategy_id="glock-4")
        for sig in (back, other):
            await bus.js_publish(subjects.signals(USER), sig, msg_id=sig.id)
        await eventually(lambda: journal.signal(other.id), what="the other strategy decided")
        assert journal.group(group.id)["state"] == "placing"
        assert journal.signal(back.id) is None  # its own group first
        sim.faults(hold_fills=False)
        await eventually(lambda: journal.group(group.id)["state"] == "completed", timeout=30, what="the spread in")
        decided = await eventually(lambda: journal.signal(back.id), what="the exit decided after the group")
        assert decided["decision"] == "accepted", decided
        await eventually(lambda: sum(t["quantity"] * (1 if t["transaction_type"] == "BUY" else -1)
                                     for t in journal.trades(USER) if t["strategy_id"] == "glock-3"
                                     and t["tradingsymbol"] == short.tradingsymbol) == 0, what="the short bought back")


async def test_the_mis_square_off_does_not_wait_for_an_nrml_groups_fills(bus, sim, data_dir):
    """A square-off has the desk to itself once the decided work before it is done — a group's too, fills and
    rollback included (they must not interleave with its flatten). kta's own MIS square-off at the cutoff waits
    only for work that trades MIS: the CI run saw it 12 s late behind an NRML condor's legs."""
    desk, kite, _ = fresh_desk(sim, bus, data_dir)
    group = await a_spread(kite, "glock-2")
    sim.faults(hold_fills=True)
    everything = None
    try:
        placing = desk.send(await order_group.decide(desk, group, 60.0), [leg.product for leg in group.legs])
        await eventually(lambda: [o for o in desk.book.of_group(group.id) if o.state is OrderState.OPEN],
                         what="the spread's hedge resting at the broker")

        async def to_itself(product: str = "") -> None:
            async with desk.exclusive(product):
                pass

        await asyncio.wait_for(to_itself("MIS"), 10)  # the MIS square-off goes ahead
        assert not placing.done()
        everything = asyncio.ensure_future(to_itself())  # a square-off of every product waits for the group
        await eventually(lambda: desk.lock.locked(), what="the square-off in, waiting for the decided work")
        assert not placing.done() and not everything.done()
        sim.faults(hold_fills=False)
        assert await asyncio.wait_for(placing, 30) == "completed"
        await asyncio.wait_for(everything, 10)
    finally:
        sim.reset_faults()
        if everything is not None and not everything.done():
            everything.cancel()
        await kite.aclose()
