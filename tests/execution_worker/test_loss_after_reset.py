"""After a kill-switch reset in loss, every figure about the daily-loss limit is the switch's own: the loss since
the reset. The risk summary's "loss used" and the Risk panel the gateway renders from the published RiskState read
0 % right after the reset (not the day's loss), and the warning (REDUCING, its alert) fires on the loss since the
reset, saying so."""

import asyncio
import re

from gateway.fragments import render
from shared import messages as m
from shared import subjects
from tests.execution_worker.kit import USER, signal
from tests.helpers import eventually

LIMIT = 100_00  # ₹100, warning at 50 %


def loss_used(html: str) -> float:
    """The Risk panel's "Loss used of ₹…" figure, in percent."""
    found = re.search(r'Loss used of [^<]*</div><div class="value">([-\d.]+)%</div>', html)
    assert found, html
    return float(found.group(1))


async def test_loss_used_and_the_warning_count_from_the_reset(bus, sim, stack):
    _, journal, _ = stack
    states: asyncio.Queue = asyncio.Queue()
    alerts: list[m.Alert] = []

    async def on_risk(state, msg):
        await states.put(state)

    async def on_alert(alert, msg):
        alerts.append(alert)

    await bus.subscribe(subjects.risk(USER), m.RiskState, on_risk)
    await bus.subscribe(subjects.alerts(USER), m.Alert, on_alert)
    await bus.sync()
    limits = m.RiskLimits(max_daily_loss=LIMIT, warn_daily_loss_pct=50.0)
    assert isinstance(await bus.request(subjects.cmd(USER, "risk", "limits"), m.SetRiskLimits(limits=limits)), m.Ok)

    async def next_state(want: m.KillSwitchState) -> m.RiskState:
        while True:
            state = await asyncio.wait_for(states.get(), 30)
            if state.state is want:
                return state

    entry = signal("sig-loss-entry", qty=10)
    await bus.js_publish(subjects.signals(USER), entry, msg_id=entry.id)
    await eventually(lambda: journal.orders_of_signal(entry.id) and
                     journal.orders_of_signal(entry.id)[0]["status"] == "COMPLETE", what="entry filled")
    sim.admin("price", {"underlying": "INFY", "price": 1480.0})  # about -₹200 on 10 shares: past the limit
    halted = await next_state(m.KillSwitchState.HALTED)
    assert halted.loss >= LIMIT and halted.loss == -halted.day_pnl
    assert loss_used(render("risk", halted, USER)) >= 100.0

    # the trader resets in loss (the position stays open, flatten_on_halt is off): the switch counts from here
    reset = (await bus.request(subjects.cmd(USER, "risk", "reset"), m.ResetKillSwitch(reason="checked"))).data
    baseline = reset["day_pnl"]
    assert reset["state"] == "ACTIVE" and baseline <= -LIMIT and reset["loss"] == 0
    summary = (await bus.request(subjects.cmd(USER, "risk", "summary"), m.GetRiskSummary())).data
    assert summary["daily_pnl"] == baseline  # the price is pinned: the day's loss is still there ...
    assert (summary["loss"], summary["loss_utilization_pct"], summary["loss_remaining"]) == (0, 0.0, LIMIT)  # ... unused
    published = await next_state(m.KillSwitchState.ACTIVE)
    assert published.loss == 0 and loss_used(render("risk", published, USER)) == 0.0

    # ₹6 a share more (about -₹60 since the reset): past the warning's ₹50, short of the limit — REDUCING, not HALTED
    sim.admin("price", {"underlying": "INFY", "price": 1474.0})
    warned = await next_state(m.KillSwitchState.REDUCING)
    assert warned.loss == baseline - warned.day_pnl and LIMIT // 2 <= warned.loss < LIMIT, warned
    assert warned.reason.startswith(f"loss since the reset ₹{warned.loss / 100:,.2f} (day P&L -₹"), warned.reason
    used = loss_used(render("risk", warned, USER))
    assert used == round(100.0 * warned.loss / LIMIT, 1) and used < 100.0  # the day's loss would read over 250 %
    alert = await eventually(lambda: next((a for a in alerts if a.title == "kill switch REDUCING"), None),
                             what="the warning's alert")
    assert alert.detail == warned.reason
    summary = (await bus.request(subjects.cmd(USER, "risk", "summary"), m.GetRiskSummary())).data
    assert summary["state"]["state"] == "REDUCING"
    assert summary["loss"] == baseline - summary["daily_pnl"] and summary["loss_utilization_pct"] < 100.0
    assert summary["loss_remaining"] == LIMIT - summary["loss"]
