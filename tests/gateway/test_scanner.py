"""The stock scanner through the gateway (``GET /api/scanner`` and the dashboard's ``/ui/scanner``
partial) against the real strategy worker and kite_sim: the result set checked against quotes this
test reads from the sim itself, bad input refused naming the field, and the partial escaped."""

from __future__ import annotations

import re

import pytest

from shared.kite.client import KiteClient
from shared.broker_sessions import get_session, vault_for
from tests.gateway.test_pages import connect_kite, htmx, stack, trader  # noqa: F401 - fixtures
from tests.strategy_worker.test_scanner import SYMBOLS, split_at_widest_gap


async def sim_quotes(bus, settings, sim) -> dict:
    """Last prices from the sim with the user's own Kite session, by a client of this test's own."""
    live = await get_session(bus, vault_for(settings), "DEMO01")
    async with KiteClient(sim.api_key, live.access_token, root=sim.root) as kite:
        return {key: q.last_price for key, q in (await kite.quote(*SYMBOLS)).items()}


async def test_scanner_api_result_set_and_refusals(trader, gw_sim, gw_settings, bus):
    client, _ = trader
    r = await client.get("/api/scanner", params={"symbols": "NSE:INFY"})
    assert r.status_code == 409 and r.json()["error"] == "broker_not_connected", r.text
    await connect_kite(client, gw_sim)

    before = await sim_quotes(bus, gw_settings, gw_sim)
    assert set(before) == set(SYMBOLS)
    cut = float(f"{split_at_widest_gap(list(before.values())):.2f}")  # prices moving a hair cannot cross it
    r = await client.get("/api/scanner", params={"symbols": ",".join(SYMBOLS).lower(), "min_price": str(cut),
                                                 "rsi_below": "100", "lookback_days": "60", "sort_by": "symbol",
                                                 "limit": "500"})
    assert r.status_code == 200, r.text
    data = r.json()
    after = await sim_quotes(bus, gw_settings, gw_sim)
    rows = data["rows"]
    expected = {s for s, ltp in after.items() if ltp >= cut}
    assert {row["symbol"] for row in rows} == expected and 0 < len(expected) < len(SYMBOLS)
    assert data["scanned"] == len(SYMBOLS) and data["matched"] == len(rows)
    assert [row["symbol"] for row in rows] == sorted(expected)
    for row in rows:
        assert row["last_price"] >= cut
        assert row["last_price"] == pytest.approx(after[row["symbol"]], rel=0.02)
        assert 0 <= row["rsi"] < 100 and row["days"] >= 30  # the history pass ran
        assert row["matched"][0].startswith("price ≥ ") and row["matched"][1].startswith("RSI ")

    # refused at the gateway, by m.Scan's own limits
    for params, field in (({"rsi_below": "abc"}, "rsi_below"), ({"rsi_below": "150"}, "rsi_below"),
                          ({"limit": "0"}, "limit"), ({"symbols": "INFY"}, "symbols[0]"),
                          ({"sort_by": "luck"}, "sort_by"), ({"min_prce": "10"}, "min_prce"),
                          ({"min_price": ["1", "2"]}, "min_price")):
        r = await client.get("/api/scanner", params=params)
        assert r.status_code == 400 and r.json()["field"] == field, (params, r.text)
        assert field.split("[")[0] in r.json()["detail"]
    # refused by the strategy worker (an m.Error), still a 400 naming the field
    r = await client.get("/api/scanner", params={"symbols": "NSE:NOSUCHCO"})
    assert r.status_code == 400 and r.json()["field"] == "symbols" and "NSE:NOSUCHCO" in r.json()["detail"]
    r = await client.get("/api/scanner", params={"min_price": "500", "max_price": "100"})
    assert r.status_code == 400 and r.json()["field"] == "max_price", r.text


async def test_scanner_panel_and_partial(trader, gw_sim):
    client, csrf = trader
    await connect_kite(client, gw_sim)
    html = (await client.get("/")).text
    assert 'id="scanner"' in html and 'hx-get="/ui/scanner"' in html and 'hx-indicator="#scan-ind"' in html
    assert 'name="rsi_below"' in html and 'name="near_high_pct"' in html

    r = await client.get("/ui/scanner", params={"symbols": "NSE:INFY, NSE:TCS", "min_price": "0", "min_volume": "",
                                                "sort_by": "symbol"}, headers=htmx(csrf))
    assert r.status_code == 200 and 'id="scan-table"' in r.text, r.text
    assert re.findall(r'data-symbol="([^"]+)"', r.text) == ["NSE:INFY", "NSE:TCS"]
    assert "2 of 2 matched" in r.text and "price ≥ 0" in r.text

    r = await client.get("/ui/scanner", params={"rsi_below": "abc"}, headers=htmx(csrf))
    assert r.status_code == 200 and 'data-field="rsi_below"' in r.text and "rsi_below: must be a number" in r.text
    # a symbol the worker does not know comes back in its error message: escaped, not markup
    r = await client.get("/ui/scanner", params={"symbols": 'NSE:<img/src="x"/onerror=alert(1)>'}, headers=htmx(csrf))
    assert r.status_code == 200 and 'id="scan-error"' in r.text, r.text
    assert "&lt;IMG/SRC=&#34;X&#34;/ONERROR=ALERT(1)&gt;" in r.text and "<IMG" not in r.text
