"""kta's MIS square-off starting while an MIS entry is on its way to the broker (decided before the cutoff, its
answer not back yet). The square-off waits for that entry's placement (``Desk.exclusive(MIS)``) and then closes
what it opened: a filled entry is flattened by kta's own order (its stop never left working beside the flatten),
a resting one is cancelled — both before the broker's own square-off, and nothing reopens after. Without the
wait (the square-off under the desk's lock only) the square-off skips the entries it has no order id for, waits
out its cancel timeout and flattens 12 s late, and the resting entry is left working for the exchange to end."""

import logging

import msgspec
import pytest

from shared import ist, subjects
from shared import messages as m
from tests.execution_worker.conftest import make_stack
from tests.execution_worker.kit import USER, broker, signal
from tests.helpers import eventually
from tests.simkit import a_morning

pytestmark = pytest.mark.slow(seconds=11)

LATENCY_MS = 4000  # every broker answer this late: the entries are still on their way when the cutoff passes


def held(journal, strategy_id: str) -> int:
    return sum(t["quantity"] * (1 if t["transaction_type"] == "BUY" else -1) for t in journal.trades(USER)
               if t["strategy_id"] == strategy_id)


def said(caplog, words: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if words in r.getMessage()]


def orders_of(journal, strategy_id: str) -> list[dict]:
    return [r for r in journal.orders(USER) if r["strategy_id"] == strategy_id]


async def test_mis_entries_on_their_way_at_the_cutoff_are_placed_then_closed_by_kta(bus, settling_sim, data_dir,
                                                                                     caplog):
    sim = settling_sim
    # no reconciliation or positions pass in the way: the cutoff is looked at every second
    async with make_stack(bus, sim, data_dir, mis_square_off_at="15:15", reconcile_interval=60.0,
                          positions_interval=60.0) as (_settings, journal, kite):
        caplog.set_level(logging.INFO)
        await a_morning(sim, by_hour=14)  # a day of its own
        day = sim.trading_day()
        # opens the desk and has it read INFY's price and circuit band (refused: its stop is above a buy)
        opener = signal("race-0", qty=1, stop=160000, strategy_id="race-0")
        await bus.js_publish(subjects.signals(USER), opener, msg_id=opener.id)
        await eventually(lambda: said(caplog, "first pass") and journal.signal_decision("race-0"),
                         what="the user's desk open")
        assert journal.signal("race-0")["decision"] == "refused"
        assert sim.advance_to(15, 14, 58)
        # the strategies' tick: two seconds before kta's cutoff. kta's clock runs on from it at the machine's pace, so
        # both entries are decided before the cutoff and still on their way (4 s) when it passes
        tick_ts = int(ist.parse(f"{day} 15:14:58"))
        sim.faults(latency_ms=LATENCY_MS)
        filling = msgspec.structs.replace(signal("race-1", qty=5, stop=140000, strategy_id="race-1"), tick_ts=tick_ts)
        resting = msgspec.structs.replace(signal("race-2", qty=3, strategy_id="race-2"), order_type=m.OrderType.LIMIT,
                                          price=140000, tick_ts=tick_ts)  # below the market: works until cancelled
        for sig in (filling, resting):
            await bus.js_publish(subjects.signals(USER), sig, msg_id=sig.id)
        await eventually(lambda: orders_of(journal, "race-1") and orders_of(journal, "race-2"),
                         what="both entries decided and on their way")
        cutoff = await eventually(lambda: said(caplog, "MIS cutoff"), what="kta's MIS cutoff")
        # the square-off began while both entries were still on their way (no answer, no broker order id)
        assert "0 position(s), 2 working order(s)" in cutoff[0], cutoff
        await eventually(lambda: all(r["order_id"] for r in orders_of(journal, "race-1") + orders_of(journal, "race-2")
                                     if r["kind"] == "entry"), what="both entries placed")
        sim.faults(latency_ms=0)  # the race is run: the rest at the broker's usual pace
        await eventually(lambda: [t for t in journal.trades(USER) if t["strategy_id"] == "race-1"
                                  and t["transaction_type"] == "SELL"], timeout=30, what="the filled entry closed")
        await eventually(lambda: {r["state"] for r in orders_of(journal, "race-2")} == {"CANCELLED"}, timeout=30,
                         what="the resting entry cancelled")

        # both entries were placed (decided before the cutoff: not refused, not withdrawn)
        assert journal.signal("race-1")["decision"] == journal.signal("race-2")["decision"] == "accepted"
        (rest,) = orders_of(journal, "race-2")
        assert rest["order_id"] and rest["filled_quantity"] == 0, rest
        assert rest["cancel_reason"].startswith("intraday (MIS) square-off"), rest  # kta's, not the exchange's
        # the filled one closed once, by kta's flatten, before the sim's close (its own square-off)
        (close,) = [t for t in journal.trades(USER) if t["strategy_id"] == "race-1" and t["transaction_type"] == "SELL"]
        kinds = {r["order_id"]: r["kind"] for r in journal.orders(USER)}
        assert kinds[close["order_id"]] == "flatten", close
        assert close["quantity"] == 5 and close["fill_timestamp"] < f"{day} 15:30:00", close
        assert held(journal, "race-1") == 0
        # its stop (if it was placed at all) never outlived the flatten
        assert {r["state"] for r in orders_of(journal, "race-1") if r["kind"] == "stop_loss"} <= {"CANCELLED"}
        mis = [p for p in (await broker(kite.positions)).net if p.product == "MIS" and p.quantity]
        assert not mis, mis
        assert not [o for o in await broker(kite.orders) if o.status in ("OPEN", "TRIGGER PENDING")]
        assert not [t for t in journal.trades(USER) if t["order_id"].startswith("external:")]
