"""kta's trading day is the exchange's, not the machine's: against a kite_sim at 60× (a session in six
wall minutes, the next trading day while the machine is still on the first) the day's report goes out once
the sim's session has closed — not at the machine's 15:30 — the kill switch starts the sim's next day (the
day's loss measured afresh), and what the journal writes after the close belongs to the sim's new day."""

from datetime import date, datetime

from kite_sim.clock import CLOSE_SECONDS
from shared import messages as m
from shared import subjects
from tests.execution_worker.conftest import make_stack
from tests.execution_worker.kit import USER, broker, signal
from tests.helpers import eventually


def sim_now(sim) -> datetime:
    return datetime.strptime(sim.get("/sim/clock").json()["now"], "%Y-%m-%d %H:%M:%S")


def advance_to(sim, hh: int, mm: int) -> None:
    """The sim's clock to hh:mm of its current trading day (ahead only)."""
    now = sim_now(sim)
    ahead = hh * 3600 + mm * 60 - (now.hour * 3600 + now.minute * 60 + now.second)
    assert ahead > 0, f"the sim is already past {hh:02d}:{mm:02d} ({now})"
    sim.admin("advance", {"seconds": ahead})


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
        if sim_now(sim).time() >= datetime.strptime("15:00", "%H:%M").time():  # a day of its own to trade in
            sim.admin("advance", {"seconds": CLOSE_SECONDS})
            await eventually(lambda: sim_now(sim).hour < 15, what="the next session")
        day = sim.get("/sim/clock").json()["trading_day"]
        await bus.js_publish(subjects.signals(USER), s := signal("day-1", qty=2, stop=140000, strategy_id="day-1"),
                             msg_id=s.id)
        await eventually(lambda: [t for t in journal.trades(USER) if t["strategy_id"] == "day-1"], what="the entry filled")
        await bus.js_publish(subjects.signals(USER), s := signal("day-2", side="SELL", qty=2, intent="exit",
                                                                  strategy_id="day-1"), msg_id=s.id)
        await eventually(lambda: flat(journal), timeout=30, what="the exit filled")
        assert journal.kill_switch(USER)["day"] <= day

        advance_to(sim, 15, 29)  # a wall second before the sim's close
        await eventually(lambda: sim.get("/sim/clock").json()["trading_day"] != day, what="the sim's next day")
        next_day = sim.get("/sim/clock").json()["trading_day"]
        (report, arrived) = (await eventually(lambda: [r for r in reports if r[0].key == f"eod:{day}"], timeout=40,
                                              what=f"the report of {day}"))[0]
        assert arrived >= f"{day} 15:30:00", f"the report of {day} went out at the sim's {arrived}, before its close"
        assert "1 closed trade" in report.detail, report.detail
        await eventually(lambda: journal.kill_switch(USER)["day"] == next_day, timeout=30,
                         what=f"the kill switch on the sim's {next_day}")
        summary = journal.daily_summary(USER, day)
        assert summary["signals"] == 2 and summary["journal"]["total_trades"] == 1, summary

        # what the journal writes now belongs to the sim's new day
        await bus.js_publish(subjects.signals(USER), s := signal("day-3", side="SELL", intent="exit",
                                                                  strategy_id="day-1"), msg_id=s.id)
        await eventually(lambda: journal.signal_decision("day-3"), what="the next day's signal decided")
        assert journal.signal("day-3")["day"] == next_day
        assert date.fromisoformat(next_day) > date.fromisoformat(day)
        assert not [o for o in await broker(kite.orders) if o.status in ("OPEN", "TRIGGER PENDING")]
