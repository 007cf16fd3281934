"""A multi-leg group whose rollback a SIGKILL cut off resumes when its signal is redelivered — possibly after the
kill switch's square-off has already closed what the rollback was to undo (tests/system: a condor's wing sold by
the square-off, then again by the resumed rollback: a naked short)."""

import time

import pytest

from execution_worker import controls, order_group, protector
from execution_worker.journal import ACCEPTED
from shared import messages as m
from shared.trading.hedge import entry_order
from tests.execution_worker.kit import USER, broker, fresh_desk, nifty_chain, option_leg
from tests.helpers import eventually

pytestmark = pytest.mark.slow(seconds=15)


async def test_a_group_resumed_after_a_square_off_undoes_nothing_twice(bus, sim, data_dir):
    """The state a kill leaves, built with the real desk and sim: the spread's hedge bought, its short leg
    rejected, the rollback not yet placed; the kill switch's square-off closes the hedge. The redelivered group
    then resumes: its rollback finds nothing held and places nothing (it sold the hedge a second time before)."""
    desk, kite, journal = fresh_desk(sim, bus, data_dir)
    try:
        calls = await nifty_chain(kite, "CE")
        desk.instruments.update({f"NFO:{calls[k].tradingsymbol}": calls[k] for k in (26200.0, 26400.0)})
        hedge, short = entry_order([option_leg(calls[26400.0], "BUY", True), option_leg(calls[26200.0], "SELL", False)])
        group = m.SignalGroup(id=f"grp-resume-{time.time_ns()}", user_id=USER, strategy_id="resume-1",
                              strategy="bear_call_spread", structure="bear_call_spread", underlying="NIFTY",
                              legs=[hedge, short])
        protector.started(desk, 0.5)
        journal.record_signal(group, ACCEPTED, "accepted before the kill")  # the first delivery's decision
        journal.record_group(group.id, USER, strategy_id="resume-1", structure=group.structure, state="placing")
        assert (await order_group.place_leg(desk, group, hedge, 0, "entry", 10.0))[1]
        sim.faults(reject_next=1, reject_reason="RMS:Blocked for trading: risk check")
        assert not (await order_group.place_leg(desk, group, short, 1, "entry", 10.0))[1]
        sim.reset_faults()

        def held() -> int:
            return desk.tracker.held("resume-1", "NFO", hedge.tradingsymbol)[0]

        assert held() == hedge.quantity
        await controls.square_off(desk, "kill switch HALTED")  # the worker was killed; its successor's halt
        await eventually(lambda: held() == 0, what="the hedge squared off")

        state = await order_group.execute_with_rollback(desk, group, 10.0)  # the redelivered signal
        assert state == "rolled_back", journal.group(group.id)
        assert [r["kind"] for r in journal.orders_of_group(group.id)] == ["entry", "entry"]  # no rollback order
        assert held() == 0
        at_broker = {p.tradingsymbol: p.quantity for p in (await broker(kite.positions)).net}
        assert at_broker.get(hedge.tradingsymbol, 0) == 0 and at_broker.get(short.tradingsymbol, 0) == 0
    finally:
        sim.reset_faults()
        await kite.aclose()
