"""The day's report reaches the trader: a journal holding a finished day (yesterday's fills) is closed
by the worker's positions pass (EndOfDay) and an ``eod_report`` alert is raised once, keyed by the day,
with the day's P&L and trades."""

import time

from execution_worker.journal import Journal
from shared.ist import day as ist_day
from tests.execution_worker.conftest import opened_desk
from tests.execution_worker.kit import USER
from tests.helpers import eventually


async def test_a_finished_day_is_reported_as_an_alert(bus, sim, data_dir):
    yesterday = ist_day(time.time() - 86400)
    j = Journal(data_dir / "journal.db")
    for n, (side, price) in enumerate((("BUY", 150000), ("SELL", 151000))):
        j.record_trade(USER, trade_id=f"T{n}", order_id=f"O{n}", exchange="NSE", tradingsymbol="INFY",
                       instrument_token=408065, transaction_type=side, quantity=10, price=price,
                       fill_timestamp=f"{yesterday} 10:0{n}:00", product="MIS", strategy_id="eod-1")
    j.close()
    async with opened_desk(bus, sim, data_dir) as (settings, journal, kite, alerts):
        (report,) = await eventually(lambda: [a for a in alerts if a.kind == "eod_report"], timeout=30,
                                     what="the day's report")
        assert report.key == f"eod:{yesterday}" and report.severity == "info"
        assert "₹100.00" in report.detail and "1 closed trade" in report.detail, report.detail
        # in the trader's words: "kill switch ACTIVE" read as tripped (trading session of 2026-12-02)
        assert report.detail.endswith("at the close: Trading allowed"), report.detail
