"""The day's report matches a position carried in from an earlier day against its own entry: a CNC buy of
one day sold by its stop the next is one LONG round trip closed that day at its real cost, not a SHORT
opened by the sell and closed by the day's next buy (seen in a trader session: "RELIANCE SHORT 1,468.20 →
1,470.10" beside a realised figure that left the carried lot's loss out)."""

import time

from execution_worker.journal import Journal
from shared import messages as m
from shared import subjects
from shared.ist import day as ist_day
from tests.execution_worker.conftest import opened_desk
from tests.execution_worker.kit import USER
from tests.helpers import eventually


def journal_fills(j: Journal, fills) -> None:
    for n, (stamp, side, price) in enumerate(fills):
        j.record_trade(USER, trade_id=f"T{n}", order_id=f"O{n}", exchange="NSE", tradingsymbol="RELIANCE",
                       instrument_token=738561, transaction_type=side, quantity=1, price=price,
                       fill_timestamp=stamp, product="CNC", strategy_id="rsi-1")


async def test_a_carried_position_closed_today_is_one_round_trip_from_its_own_entry(bus, sim, data_dir):
    before, day = ist_day(time.time() - 2 * 86400), ist_day(time.time() - 86400)
    j = Journal(data_dir / "journal.db")
    journal_fills(j, [(f"{before} 14:59:45", "BUY", 1_512_05),   # carried overnight
                      (f"{day} 09:43:15", "SELL", 1_468_20),     # its stop: closes the carried lot
                      (f"{day} 09:55:04", "BUY", 1_470_10)])     # a new entry, still open
    j.close()
    async with opened_desk(bus, sim, data_dir) as (settings, journal, kite, alerts):
        reply = await bus.request(subjects.cmd(USER, "journal", "summary"), m.GetJournalSummary(day=day), timeout=30)
        assert isinstance(reply, m.Ok), reply
        trips = [(t["type"], t["qty"], t["entry"], t["exit"], t["pnl"]) for t in reply.data["trades"]]
        assert trips == [("LONG", 1, 1_512_05, 1_468_20, -43_85)]
        assert (reply.data["total_pnl"], reply.data["losses"], reply.data["wins"]) == (-43_85, 1, 0)

        # the day the position opened closed nothing
        first = await bus.request(subjects.cmd(USER, "journal", "summary"), m.GetJournalSummary(day=before))
        assert first.data["trades"] == [] and first.data["total_pnl"] == 0

        # the end-of-day report says the same
        (report,) = await eventually(lambda: [a for a in alerts if a.key == f"eod:{day}"], timeout=30,
                                     what="the day's report")
        assert "-₹43.85" in report.detail and "1 closed trade" in report.detail, report.detail

        # the lot bought today is still held: the risk summary (the report's "Open positions") counts it though the
        # broker lists no day position for it (here the demo's RELIANCE holdings cover it; kta tracks and protects it)
        async def open_positions():
            reply = await bus.request(subjects.cmd(USER, "risk", "summary"), m.GetRiskSummary())
            return reply.data["position_count"] == 1 or None

        await eventually(open_positions, timeout=30, what="the lot still held counted among the open positions")
