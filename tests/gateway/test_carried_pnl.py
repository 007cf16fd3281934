"""A delivery position carried overnight in the P&L by strategy, through the real stack on a settling kite_sim:
the next morning its shares sit in the holdings (T1), not in Kite's net positions, so the positions carry no
price for it. It is marked at the holdings' last price from their previous close — it read as a loss of its
whole value (marked at ₹0: ₹-4,435.20 on 3 RELIANCE in a trader session)."""

from __future__ import annotations

import re

import pytest

from shared import messages as m
from tests.gateway.test_books import trader  # noqa: F401 - the logged-in, Kite-connected client
from tests.helpers import eventually
from tests.simkit import a_morning, start_sim

pytestmark = pytest.mark.slow(seconds=12)


@pytest.fixture(scope="module")
def gw_sim(tmp_path_factory, gateway_port):
    """This module's own sim, settling at each close (CNC buys become T1 holdings)."""
    s = start_sim(tmp_path_factory.mktemp("carried-sim"), speed=60.0, extra=("--settle",),
                  redirect_url=f"http://127.0.0.1:{gateway_port}/auth/kite/callback")
    yield s
    s.stop()


async def manual_infy(client, day: str = "") -> dict | None:
    pnl = (await client.get("/api/pnl")).json()
    if day and pnl["day"] != day:
        return None
    manual = next((r for r in pnl["strategies"] if r["strategy"] == "manual"), None)
    return next((p for p in manual["positions"] if p["tradingsymbol"] == "INFY"), None) if manual else None


async def test_a_delivery_position_carried_overnight_is_marked_at_its_holdings_price(trader, gw_sim):  # noqa: F811
    client, csrf = trader
    await a_morning(gw_sim)
    r = await client.post("/api/orders", headers={"X-CSRF-Token": csrf}, json={
        "exchange": "NSE", "tradingsymbol": "INFY", "transaction_type": "BUY", "quantity": 3, "product": "CNC",
        "client_id": "carried-1"})
    assert r.status_code == 201, r.text
    await eventually(lambda: manual_infy(client), 30, "the manual INFY position")

    day = gw_sim.trading_day()
    gw_sim.advance_to(15, 29, 59)
    await eventually(lambda: gw_sim.trading_day() != day, what="the sim's next session")
    next_day = gw_sim.trading_day()
    row = await eventually(lambda: manual_infy(client, next_day), 30, "the carried position in the next day's P&L")
    infy = next(h for h in (await client.get("/api/holdings")).json() if h["tradingsymbol"] == "INFY")
    assert infy["t1_quantity"] == 3  # in the holdings now
    assert row["quantity"] == 3 and row["last_price"] > 0
    assert row["average_price"] == m.to_paise(infy["close_price"])  # the day opens at the previous close
    assert row["unrealised"] == 3 * (row["last_price"] - row["average_price"])
    assert abs(row["unrealised"]) < 3 * row["average_price"] // 10  # not a loss of the whole value
    # the Holdings panel counts the T1 shares with the settled ones, as its average and P&L do
    html = (await client.get("/ui/holdings")).text
    cells = re.search(r'<tr id="holding-INFY"><td class="sym">INFY</td><td class="num">(\d+) <small[^>]*>T1 (\d+)<', html)
    assert cells and (int(cells.group(1)), int(cells.group(2))) == (infy["quantity"] + 3, 3), html[-1500:]

    # the dashboard's Positions: the carried row has its last price and P&L (since cost, on kta's lots) like any
    # other row — it showed "–" for both. The price held still, so the broker's holdings read the same figure
    gw_sim.admin("price", {"underlying": "INFY", "price": 1480.0})
    try:
        fill = next(t for t in (await client.get("/api/trades", params={"strategy": "manual", "symbol": "INFY", "day": day})
                                ).json()["items"] if t["transaction_type"] == "BUY")
        expected = f"{(148000 - fill['price']) * 3 / 100:,.2f}".replace("-", "")

        async def carried_row() -> str:
            html = (await client.get("/ui/positions")).text
            body = re.search(r'<tbody id="pos-NSE-INFY-CNC" class="carried[^"]*">(.*?)</tbody>', html, re.S)
            return body.group(1) if body and "1,480.00" in body.group(1) else ""

        row = await eventually(carried_row, 30, "the carried row priced at 1,480")
        cells = re.findall(r'<td class="num[^"]*">([^<]*)</td>', row)
        assert cells[0] == "3" and cells[1] == "1,480.00" and expected in cells[2], (cells, expected)
        infy = next(h for h in (await client.get("/api/holdings")).json() if h["tradingsymbol"] == "INFY")
        assert infy["last_price"] == 1480.0
    finally:
        gw_sim.admin("price", {"underlying": "INFY", "price": None})


def fifo(fills: list[dict], opening: dict[str, int] | None = None) -> list[int]:
    """The P&L of each closed piece, matched first in first out from the fills (oldest first) — the test's own
    recomputation; ``opening``: an open lot's price replaced (a carried position counted from the close)."""
    lots: list[list[int]] = []  # [signed qty, price]
    out = []
    for f in fills:
        qty = f["quantity"] if f["transaction_type"] == "BUY" else -f["quantity"]
        while qty and lots and (lots[0][0] > 0) != (qty > 0):
            take = min(abs(qty), abs(lots[0][0]))
            entry = lots[0][1]
            out.append((f["price"] - entry) * take * (1 if lots[0][0] > 0 else -1))
            lots[0][0] += take if lots[0][0] < 0 else -take
            qty += take if qty < 0 else -take
            if not lots[0][0]:
                lots.pop(0)
        if qty:
            lots.append([qty, (opening or {}).get(f["day"], f["price"])])
    return out


async def test_the_report_s_two_win_rates_say_what_they_count_and_agree_with_the_journal_s_fills(trader, gw_sim):  # noqa: F811
    """A delivery position bought one day and sold the next: the report's headline win rate counts it against its
    entry price (the journal's round trips), the P&L by strategy's from the previous close (Kite's day P&L) — on
    such a day the two differ (a trade lost on the day can be won against its entry), and both read a bare "win
    rate". Each now says what it counts, and each agrees with a FIFO recomputation from the trade book."""
    client, csrf = trader
    await a_morning(gw_sim)
    r = await client.post("/api/orders", headers={"X-CSRF-Token": csrf}, json={
        "exchange": "NSE", "tradingsymbol": "TCS", "transaction_type": "BUY", "quantity": 2, "product": "CNC",
        "client_id": "win-rate-in"})
    assert r.status_code == 201, r.text

    async def tcs_fills(*days: str) -> list[dict]:
        items = [t for d in days for t in (await client.get("/api/trades", params={
            "symbol": "TCS", "strategy": "manual", "limit": 200, "day": d})).json()["items"]]
        return sorted(items, key=lambda t: (t["fill_timestamp"], t["trade_id"]))

    day = gw_sim.trading_day()
    await eventually(lambda: tcs_fills(day), 30, "the TCS buy filled")
    gw_sim.advance_to(15, 29, 59)
    await eventually(lambda: gw_sim.trading_day() != day, what="the sim's next session")
    next_day = gw_sim.trading_day()
    r = await client.post("/api/orders", headers={"X-CSRF-Token": csrf}, json={
        "exchange": "NSE", "tradingsymbol": "TCS", "transaction_type": "SELL", "quantity": 2, "product": "CNC",
        "client_id": "win-rate-out"})
    assert r.status_code == 201, r.text
    fills = await eventually(lambda: _both_days(tcs_fills(day, next_day), next_day), 30, "the TCS sell filled")
    held = await eventually(lambda: _holding(client, "TCS"), 30, "the TCS shares in the holdings")
    close = m.to_paise(held["close_price"])  # the close of the day the position was carried in from

    against_entry = fifo(fills)
    on_the_day = fifo(fills, opening={day: close})
    summary = (await client.get("/api/journal/summary", params={"day": next_day})).json()
    tcs = [t for t in summary["trades"] if t["symbol"] == "TCS"]
    assert [t["pnl"] for t in tcs] == against_entry, (tcs, fills)
    assert (summary["total_trades"], summary["wins"]) == (len(against_entry), sum(p > 0 for p in against_entry))
    pnl = await eventually(lambda: _pnl_of(client, next_day), 30, "the next day's P&L by strategy")
    manual = next(r for r in pnl["strategies"] if r["strategy"] == "manual")
    assert (manual["realised"], manual["trades"], manual["wins"]) == (
        sum(on_the_day), len(on_the_day), sum(p > 0 for p in on_the_day)), (manual, fills, close)

    report = (await client.get("/ui/report")).text
    assert re.search(r'Win rate · vs entry</div><div class="value" id="report-win-rate">', report), report[:3000]
    assert re.search(r'day win rate</div><div class="value small-value" id="report-pnl-win-rate">', report)


async def _both_days(fills, next_day: str) -> list[dict] | None:
    fills = await fills
    return fills if len(fills) >= 2 and fills[-1]["day"] == next_day else None


async def _holding(client, symbol: str) -> dict | None:
    return next((h for h in (await client.get("/api/holdings")).json() if h["tradingsymbol"] == symbol), None)


async def _pnl_of(client, day: str) -> dict | None:
    pnl = (await client.get("/api/pnl")).json()
    return pnl if pnl["day"] == day else None
