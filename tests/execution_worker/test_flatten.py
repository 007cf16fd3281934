"""A HALTED kill switch with ``flatten_on_halt`` closes the account's positions (short legs before
their hedges, as the flatten plan orders them) with protected MARKET orders, journaled as such."""

from shared import messages as m
from shared import subjects
from tests.execution_worker.kit import USER, broker, signal
from tests.helpers import eventually


async def test_halt_with_flatten_closes_the_position(bus, sim, stack):
    _, journal, kite = stack
    opened = await bus.request(subjects.cmd(USER, "execution", "positions"), m.GetPositions(), timeout=30)
    assert isinstance(opened, m.Ok), opened
    # the day's loss is measured from here, whatever the session's account did before
    assert isinstance(await bus.request(subjects.cmd(USER, "risk", "reset"), m.ResetKillSwitch(reason="baseline")),
                      m.Ok)
    limits = m.RiskLimits(max_daily_loss=50_00, flatten_on_halt=True)
    assert isinstance(await bus.request(subjects.cmd(USER, "risk", "limits"), m.SetRiskLimits(limits=limits)), m.Ok)
    try:
        entry = signal("flatten-entry-1", qty=10)
        await bus.js_publish(subjects.signals(USER), entry, msg_id=entry.id)
        await eventually(lambda: journal.orders_of_signal(entry.id) and
                         journal.orders_of_signal(entry.id)[0]["status"] == "COMPLETE", what="entry filled")
        sim.admin("price", {"underlying": "INFY", "price": 1480.0})  # -₹200 on 10 shares: past the ₹50 limit

        def flattened():
            rows = [r for r in journal.orders(USER) if r["kind"] == "flatten" and r["tradingsymbol"] == "INFY"]
            return rows if rows and all(r["status"] == "COMPLETE" for r in rows) else None

        rows = await eventually(flattened, timeout=30, what="the flatten orders filled")
        assert all(r["order_type"] == "MARKET" and r["market_protection"] == -1 and r["transaction_type"] == "SELL"
                   for r in rows)
        summary = await bus.request(subjects.cmd(USER, "risk", "summary"), m.GetRiskSummary())
        assert summary.data["state"]["state"] == "HALTED"

        async def infy_flat():
            net = {(p.tradingsymbol, p.product): p.quantity for p in (await broker(kite.positions)).net}
            return all(q == 0 for (sym, _), q in net.items() if sym == "INFY")

        await eventually(infy_flat, what="INFY flat at the broker")
    finally:
        await bus.request(subjects.cmd(USER, "risk", "reset"), m.ResetKillSwitch(reason="test over"))
        await bus.request(subjects.cmd(USER, "risk", "limits"), m.SetRiskLimits(limits=m.RiskLimits()))
