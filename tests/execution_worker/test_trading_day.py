"""kta's trading day is the exchange's, not the machine's: against a kite_sim at 60× (a session in six
wall minutes, the next trading day while the machine is still on the first) the day's report goes out once
the sim's session has closed — not at the machine's 15:30 — the kill switch starts the sim's next day (the
day's loss measured afresh), and what the journal writes after the close belongs to the sim's new day.

And kta squares its own intraday (MIS) positions off at ``mis_square_off_at`` on that clock, before the
broker's 15:20 square-off: their stops and working MIS entries cancelled, the positions flattened by kta's
own orders (the strategies hear fills), MIS entries refused from then on, delivery (CNC) left alone."""

from datetime import date

import msgspec
import pytest

from shared import messages as m
from shared import subjects
from tests.execution_worker.conftest import make_stack
from tests.execution_worker.kit import USER, broker, collected, signal
from tests.helpers import eventually
from tests.simkit import a_morning

pytestmark = pytest.mark.slow(seconds=32)


def flat(journal) -> bool:
    return not sum(t["quantity"] * (1 if t["transaction_type"] == "BUY" else -1) for t in journal.trades(USER))


async def test_the_days_report_and_the_kill_switchs_day_follow_the_exchange_clock(bus, settling_sim, data_dir):
    sim = settling_sim
    reports: list[tuple[m.Alert, str]] = []  # (alert, the sim's time when it arrived)

    async def on_alert(a, msg):
        if a.kind == "eod_report":
            reports.append((a, sim.get("/sim/clock").json()["now"]))

    await bus.subscribe(subjects.alerts(USER), m.Alert, on_alert)
    async with make_stack(bus, sim, data_dir) as (settings, journal, kite):
        await a_morning(sim, by_hour=14)  # a day of its own to trade in
        day = sim.trading_day()
        await bus.js_publish(subjects.signals(USER), s := signal("day-1", qty=2, stop=140000, strategy_id="day-1"),
                             msg_id=s.id)
        await eventually(lambda: [t for t in journal.trades(USER) if t["strategy_id"] == "day-1"], what="the entry filled")
        await bus.js_publish(subjects.signals(USER), s := signal("day-2", side="SELL", qty=2, intent="exit",
                                                                  strategy_id="day-1"), msg_id=s.id)
        await eventually(lambda: flat(journal), timeout=30, what="the exit filled")
        assert journal.kill_switch(USER)["day"] <= day

        assert sim.advance_to(15, 29)  # a wall second before the sim's close
        await eventually(lambda: sim.trading_day() != day, what="the sim's next day")
        next_day = sim.trading_day()
        (report, arrived) = (await eventually(lambda: [r for r in reports if r[0].key == f"eod:{day}"], timeout=40,
                                              what=f"the report of {day}"))[0]
        assert arrived >= f"{day} 15:30:00", f"the report of {day} went out at the sim's {arrived}, before its close"
        assert "1 closed trade" in report.detail, report.detail
        await eventually(lambda: journal.kill_switch(USER)["day"] == next_day, timeout=30,
                         what=f"the kill switch on the sim's {next_day}")
        summary = journal.daily_summary(USER, day)
        assert summary["signals"] == 2 and summary["journal"]["total_trades"] == 1, summary

        # what the journal writes now belongs to the sim's new day: the signal, its order, its fill
        await bus.js_publish(subjects.signals(USER), s := signal("day-3", qty=2, strategy_id="day-1"), msg_id=s.id)
        await eventually(lambda: not flat(journal), what="the next day's entry filled")
        assert journal.signal("day-3")["day"] == next_day
        assert {(r["day"], t["day"]) for r in journal.orders(USER) if r["signal_id"] == "day-3"
                for t in journal.trades_of_order(r["order_id"])} == {(next_day, next_day)}
        await bus.js_publish(subjects.signals(USER), s := signal("day-4", side="SELL", qty=2, intent="exit",
                                                                  strategy_id="day-1"), msg_id=s.id)
        await eventually(lambda: flat(journal), timeout=30, what="the exit filled")
        assert date.fromisoformat(next_day) > date.fromisoformat(day)
        assert not [o for o in await broker(kite.orders) if o.status in ("OPEN", "TRIGGER PENDING")]


async def test_kta_squares_its_mis_positions_off_at_its_cutoff_before_the_broker_does(bus, settling_sim, data_dir):
    sim = settling_sim
    outcomes = await collected(bus, subjects.outcomes(USER), m.StrategyOutcome)
    async with make_stack(bus, sim, data_dir, mis_square_off_at="15:15") as (settings, journal, kite):
        await a_morning(sim, by_hour=14)  # a day of its own to trade in
        day = sim.trading_day()
        mis = signal("cut-1", qty=5, stop=140000, strategy_id="mis-1")
        resting = msgspec.structs.replace(signal("cut-2", qty=3, strategy_id="mis-2"), order_type=m.OrderType.LIMIT,
                                          price=140000)  # below the market: works until cancelled
        cnc = msgspec.structs.replace(signal("cut-3", qty=2, stop=140000, strategy_id="cnc-1"), product=m.Product.CNC)
        for sig in (mis, resting, cnc):
            await bus.js_publish(subjects.signals(USER), sig, msg_id=sig.id)
        await eventually(lambda: held(journal, "mis-1") == 5 and held(journal, "cnc-1") == 2, timeout=30,
                         what="the MIS and CNC entries filled")
        await eventually(lambda: [r for r in journal.orders(USER) if r["strategy_id"] == "mis-1"
                                  and r["kind"] == "stop_loss" and r["state"] == "TRIGGER PENDING"], what="the MIS stop")
        await eventually(lambda: [r for r in journal.orders(USER) if r["strategy_id"] == "mis-2" and r["state"] == "OPEN"],
                         what="the resting MIS entry")

        assert sim.advance_to(15, 14)  # a wall second before kta's cutoff, six before the broker's square-off
        await eventually(lambda: held(journal, "mis-1") == 0, timeout=30, what="the MIS position closed")
        (close,) = [t for t in journal.trades(USER) if t["strategy_id"] == "mis-1" and t["transaction_type"] == "SELL"]
        kinds = {r["order_id"]: r["kind"] for r in journal.orders(USER)}
        assert kinds.get(close["order_id"]) == "flatten", close  # kta's own order, not the broker's square-off adopted
        assert f"{day} 15:15:00" <= close["fill_timestamp"] < f"{day} 15:30:00", close  # before the sim's close
        heard = await eventually(lambda: [o for o in outcomes if o.strategy_id == "mis-1" and o.kind == "filled"
                                          and o.order_kind == "flatten"], what="the strategy told of its fill")
        assert heard[-1].position == 0
        orders = journal.orders(USER)
        assert {r["state"] for r in orders if r["strategy_id"] == "mis-1" and r["kind"] == "stop_loss"} == {"CANCELLED"}
        assert {r["state"] for r in orders if r["strategy_id"] == "mis-2"} == {"CANCELLED"}  # the resting entry

        late = signal("cut-4", qty=5, stop=140000, strategy_id="mis-3")
        await bus.js_publish(subjects.signals(USER), late, msg_id=late.id)
        await eventually(lambda: journal.signal_decision("cut-4"), what="the late MIS entry decided")
        assert journal.signal("cut-4")["code"] == "MIS_CUTOFF", journal.signal("cut-4")
        assert held(journal, "cnc-1") == 2  # delivery is left alone, and its protection with it
        await eventually(lambda: [o for o in outcomes if o.strategy_id == "cnc-1" and o.kind == "filled"],
                         what="the CNC fill told")

        assert sim.advance_to(15, 29)
        await eventually(lambda: sim.trading_day() != day, what="the sim's next day")
        next_day = sim.trading_day()
        await eventually(lambda: journal.kill_switch(USER)["day"] == next_day, timeout=30,
                         what="a positions pass (and its cross-check) on the next day")
        assert not [p for p in (await broker(kite.positions)).net if p.product == "MIS" and p.quantity]
        # nothing was left for the broker's square-off: no external fill adopted for any MIS strategy
        assert not [t for t in journal.trades(USER) if t["order_id"].startswith("external:") and t["product"] == "MIS"]


def held(journal, strategy_id: str) -> int:
    return sum(t["quantity"] * (1 if t["transaction_type"] == "BUY" else -1) for t in journal.trades(USER)
               if t["strategy_id"] == strategy_id)
