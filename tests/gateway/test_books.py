"""The order and trade books through the real stack: signals placed by the execution worker on
kite_sim, read back page by page from /api/orders, /api/trades and the /orders and /trades pages."""

from __future__ import annotations

import re
from contextlib import aclosing

import pytest

from execution_worker.journal import Journal
from gateway.templating import ist
from shared import subjects
from tests.execution_worker.kit import signal
from tests.gateway.conftest import login, serve_with_workers
from tests.gateway.test_pages import connect_kite
from tests.helpers import eventually

pytestmark = pytest.mark.slow(seconds=15)

ORDERS = 12


@pytest.fixture
async def trader(gw_settings, gw_sim, bus):
    async with serve_with_workers(gw_settings, bus) as gw:
        client, csrf = await login(gw)
        async with aclosing(client):
            await connect_kite(client, gw_sim)
            yield client, csrf


async def test_books_page_through_the_days_orders(trader, bus):
    client, csrf = trader
    for i in range(ORDERS):
        sig = signal(f"book-{i}", qty=1, strategy_id="book-test" if i % 3 else "other-test",
                     symbol="INFY" if i % 2 else "TCS", token=408065 if i % 2 else 2953217)
        await bus.js_publish(subjects.signals("DEMO01"), sig, msg_id=sig.id)

    async def all_filled():
        r = await client.get("/api/orders", params={"limit": 200, "status": "COMPLETE"})
        if r.status_code == 503:  # the execution worker busy placing them: not yet
            return None
        page = r.json()
        return page if len([o for o in page["items"] if o["signal_id"].startswith("book-")]) == ORDERS else None
    await eventually(all_filled, 60, "every order filled")

    seen, before = [], ""
    while True:  # 5 a page, newest first, no row twice, none missing
        page = (await client.get("/api/orders", params={"limit": 5, "before": before, "strategy": "book-test"})).json()
        seen += [o["tag"] for o in page["items"]]
        if not page["next"]:
            break
        before = page["next"]
    assert len(seen) == len(set(seen)) == 8  # 8 of the 12 are book-test's
    stamps = [o["created_ts"] for o in (await client.get("/api/orders", params={"limit": 200})).json()["items"]]
    assert stamps == sorted(stamps, reverse=True)
    tcs = (await client.get("/api/orders", params={"limit": 200, "symbol": "tcs"})).json()["items"]
    assert tcs and {o["tradingsymbol"] for o in tcs} == {"TCS"}
    r = await client.get("/api/orders", params={"before": "forged"})
    assert r.status_code == 400 and r.json()["field"] == "before"

    async def all_journaled():  # a fill is journaled just after its order shows COMPLETE
        fills = (await client.get("/api/trades", params={"limit": 200, "side": "BUY"})).json()
        return len([t for t in fills["items"] if t["signal_id"].startswith("book-")]) >= ORDERS
    await eventually(all_journaled, 30, "every fill journaled")
    assert (await client.get("/api/trades", params={"side": "HOLD"})).status_code == 400

    html = (await client.get("/orders", params={"strategy": "book-test"})).text
    assert html.count("data-tag=") == 8 and 'id="page-older"' not in html
    # one clock, sorted and shown: kta's placing time (the exchange's runs at the sim's speed), named in the header
    shown = re.findall(r'<tr id="book-[^"]+"[^>]*>\s*<td class="num"[^>]*>([^<]+)</td>', html)
    rows = (await client.get("/api/orders", params={"limit": 50, "strategy": "book-test"})).json()["items"]
    assert shown == [ist(o["created_ts"]) for o in rows] and shown == sorted(shown, reverse=True)
    assert "Placed (kta, IST)" in html
    assert 'data-refresh="orders:1000" hx-trigger="kta:refresh, kta:orders from:body" hx-sync="this:queue last"' in html  # the first page follows orders
    html = (await client.get("/orders", params={"status": "REJECTED"})).text
    assert "No orders match these filters." in html
    html = (await client.get("/trades", params={"symbol": "INFY"})).text
    assert html.count('id="trade-') >= ORDERS // 2 and "TCS</td>" not in html

    page = (await client.get("/orders")).text  # 12 orders: one page of 50
    first = (await client.get("/api/orders", params={"limit": 5})).json()
    older = (await client.get("/orders", params={"before": first["next"]})).text
    assert 'id="page-newest"' in older and "data-refresh" not in older  # an older page holds still
    assert page.count("data-tag=") >= ORDERS


async def test_pnl_by_strategy_follows_the_fills(trader, bus):
    client, _ = trader

    async def fills_of(n):
        fills = (await client.get("/api/trades", params={"strategy": "pnl-test", "limit": 10})).json()["items"]
        return fills if len(fills) == n else None
    for i, (side, intent) in enumerate((("BUY", "entry"), ("SELL", "exit"), ("BUY", "entry"))):
        sig = signal(f"pnl-{i}", side=side, qty=2, intent=intent, strategy_id="pnl-test")
        await bus.js_publish(subjects.signals("DEMO01"), sig, msg_id=sig.id)
        await eventually(lambda n=i + 1: fills_of(n), 60, f"fill {i + 1} of pnl-test")  # an exit needs its entry filled
    fills = list(reversed(await fills_of(3)))
    pnl = (await client.get("/api/pnl")).json()
    row = next(r for r in pnl["strategies"] if r["strategy"] == "pnl-test")
    buy, sell = fills[0]["price"], fills[1]["price"]
    assert row["realised"] == (sell - buy) * 2 and row["trades"] == 1  # FIFO: the first buy closed by the sell
    assert [(p["tradingsymbol"], p["quantity"], p["average_price"]) for p in row["positions"]] == [
        ("INFY", 2, fills[2]["price"])]
    assert row["charges"] > 0 and row["net"] == row["realised"] + row["unrealised"] - row["charges"]
    assert pnl["broker_day_pnl"] is not None and pnl["day"] == fills[0]["day"]
    html = (await client.get("/ui/strategy-pnl", headers={"HX-Request": "true"})).text
    assert 'data-strategy="pnl-test"' in html and "INFY +2 @" in html and 'id="pnl-explained"' in html


async def test_pnl_reads_every_fill_of_the_day_across_pages_and_carries_the_day_befores_position(gw_settings, bus):
    """The P&L panel reads the day's fills from the trade book a page (201) at a time, newest first, until
    a fill of an earlier day: 250 fills of the reporting day (the newest fill's, a paper market ahead of
    this machine's clock) span two pages. The day before's open buy is carried in (GetCarried): the day's
    first sell closes it (FIFO) — at its own price here, the broker's previous close when connected."""
    day, before = "2099-03-02", "2099-03-01"
    async with serve_with_workers(gw_settings, bus) as gw:
        journal = Journal(gw_settings.data_path / "journal.db")  # the execution worker's own file
        try:
            def fill(n: int, stamp: str, side: str, price: int) -> None:
                journal.record_trade("DEMO01", trade_id=f"t{n}", order_id=f"o{n}", exchange="NSE",
                                     tradingsymbol="INFY", instrument_token=408065, transaction_type=side, quantity=1,
                                     price=price, fill_timestamp=stamp, product="MIS", strategy_id="paged")
            fill(0, f"{before} 15:00:00", "BUY", 90_00)  # yesterday's open lot: carried into today
            for n in range(1, 251):  # 125 round trips of 1 share: bought at 100, sold at 101
                fill(n, f"{day} {9 + n // 60:02d}:{n % 60:02d}:00", "BUY" if n % 2 else "SELL", 100_00 if n % 2 else 101_00)
        finally:
            journal.close()
        client, _ = await login(gw)
        async with aclosing(client):
            pnl = (await client.get("/api/pnl")).json()
    row = next(r for r in pnl["strategies"] if r["strategy"] == "paged")
    assert pnl["day"] == day and row["fills"] == 250  # the day's fills only
    # the carried lot (90) closed by the first sell (101), then each sell the oldest buy (100): one buy left open
    assert (row["trades"], row["wins"], row["realised"]) == (125, 125, 11_00 + 124 * 1_00)
    assert [(p["tradingsymbol"], p["quantity"], p["average_price"]) for p in row["positions"]] == [("INFY", 1, 100_00)]
