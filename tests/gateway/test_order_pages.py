"""``GET /api/orders`` a page at a time, newest first, through the execution worker's journal (more
rows than tests/gateway/test_books.py places through the broker): every order exactly once however many
pages, even when several share a second, a page never shifted by orders placed meanwhile, filters in
the same keyset, a bound on the page size, bad cursors named, and never another user's orders."""

from __future__ import annotations

import time
from contextlib import aclosing

from execution_worker.journal import Journal
from shared import ist
from shared.messages import TransactionType
from shared.trading.order import Order, OrderState
from tests.gateway.conftest import login

N = 130  # more than two pages of 50
# an hour ago, but never yesterday (IST): the books open on today's page, and from 00:00 to 01:00 IST an hour
# ago was yesterday's (the long-day test failed every evening 18:30-19:30 UTC: '0 fills on this page')
T0 = max(time.time() - 3600, ist.now(time.time()).replace(hour=0, minute=0, second=1, microsecond=0).timestamp())


def order(i: int, user: str = "DEMO01", second: int | None = None) -> Order:
    """Two orders share each second (the tag breaks the tie); every third is still open."""
    return Order(tag=f"t{user}{i:04d}", user_id=user, kind="entry", strategy_id=f"s{i % 2}", exchange="NSE",
                 tradingsymbol="INFY" if i % 5 else "TCS", transaction_type=TransactionType.BUY,
                 order_type="LIMIT", product="MIS", quantity=1, price=150000,
                 state=OrderState.OPEN if i % 3 == 0 else OrderState.COMPLETE,
                 status="OPEN" if i % 3 == 0 else "COMPLETE",
                 created_ts=ist.stamp(T0 + (i // 2 if second is None else second)))


def journal_of(gateway) -> Journal:
    journal = Journal(gateway.settings.data_path / "journal.db")
    for i in range(N):
        journal.save_order(order(i))
    journal.save_order(order(0, user="DEMO02"))
    return journal


async def walk(client, **params) -> list[dict]:
    rows, before = [], ""
    while True:
        r = await client.get("/api/orders", params={**params, "before": before})
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) <= params.get("limit", 50)
        rows += page["items"]
        if page["next"] is None:
            return rows
        before = page["next"]


async def test_orders_page_newest_first_each_once(stack):
    journal = journal_of(stack)
    client, _ = await login(stack)
    async with aclosing(client):
        first = (await client.get("/api/orders")).json()
        assert len(first["items"]) == 50 and first["next"]
        keys = [(o["created_ts"], o["tag"]) for o in first["items"]]
        assert keys == sorted(keys, reverse=True) and first["items"][0]["tag"] == f"tDEMO01{N - 1:04d}"

        journal.save_order(order(N, second=N))  # placed while the trader reads page one
        second = (await client.get("/api/orders", params={"before": first["next"]})).json()
        assert second["items"][0]["tag"] == f"tDEMO01{N - 51:04d}"  # right after page one's last row

        everything = await walk(client, limit=37)
        assert [o["tag"] for o in everything] == [f"tDEMO01{i:04d}" for i in range(N, -1, -1)]
        assert all(o["user_id"] == "DEMO01" for o in everything)  # DEMO02's order never shows


async def test_orders_filter_in_the_same_keyset(stack):
    journal_of(stack)
    client, _ = await login(stack)
    async with aclosing(client):
        open_ = await walk(client, status="open", limit=20)
        assert {o["tag"] for o in open_} == {f"tDEMO01{i:04d}" for i in range(N) if i % 3 == 0}
        assert len(await walk(client, status="complete")) == N - len(open_)
        tcs = await walk(client, symbol="tcs", strategy="s0", limit=5)
        assert {o["tag"] for o in tcs} == {f"tDEMO01{i:04d}" for i in range(N) if i % 5 == 0 and i % 2 == 0}


async def test_order_pages_are_bounded_and_bad_cursors_named(stack):
    client, _ = await login(stack)
    async with aclosing(client):
        r = await client.get("/api/orders", params={"limit": 201})
        assert r.status_code == 400 and "limit" in r.text
        for bad in ("nonsense", "bm90IGpzb24", "WzFd"):  # not base64, not JSON, one part instead of two
            r = await client.get("/api/orders", params={"before": bad})
            assert r.status_code == 400 and r.json()["field"] == "before", (bad, r.text)


LONG_DAY = 1500  # orders (and as many fills): more than a 45-minute session at sim speed produced
PAGE_WEIGHT = 200_000  # bytes


async def test_pages_stay_under_200_kb_however_long_the_day(stack):
    journal = Journal(stack.settings.data_path / "journal.db")
    day = ist.stamp(T0)[:10]
    for i in range(LONG_DAY):
        o = order(i)
        o.status_message = "cancelled by kta: exit signal 18ed0e6b5ffa360ea (a reason long enough to matter)"
        journal.save_order(o)
        journal.record_trade("DEMO01", trade_id=f"T{i}", order_id=f"O{i}", exchange="NSE", tradingsymbol="INFY",
                             instrument_token=408065, transaction_type="BUY", quantity=1, price=150000,
                             fill_timestamp=f"{day} 09:{15 + i // 3600 % 40:02d}:{i % 60:02d}", strategy_id="s0")
    client, _ = await login(stack)
    async with aclosing(client):
        for path in ("/orders", "/orders?status=complete", "/trades", "/", "/settings"):
            r = await client.get(path)
            assert r.status_code == 200 and len(r.content) < PAGE_WEIGHT, (path, len(r.content))
        html = (await client.get("/orders")).text
        assert html.count('data-tag="') == 50 and 'id="page-older"' in html  # a page, not the day
        # the fills' own day: the trade book opens on the exchange's day, and a run crossing midnight IST (full run
        # #3, 23:58 -> 00:05) opened it on the next, empty one
        html = (await client.get(f"/trades?day={day}")).text
        assert 'id="page-older"' in html
