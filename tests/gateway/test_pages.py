"""The dashboard's pages and HTMX partials against the gateway under uvicorn, the three workers
in-process and a kite_sim: what a trader sees, errors in words, forms generated from the catalog."""

from __future__ import annotations

import re

import pytest

from tests.gateway.conftest import login, serve
from tests.simkit import request_token
from tests.stackkit import workers


@pytest.fixture
async def stack(gw_settings, bus):
    async with workers(gw_settings, bus), serve(gw_settings) as gw:
        yield gw


async def connect_kite(client, sim) -> None:
    r = await client.get("/auth/kite/login")
    assert r.status_code == 302 and r.headers["location"].startswith(sim.login_url)
    token = request_token(sim)
    r = await client.get("/auth/kite/callback", params={"request_token": token, "status": "success"})
    assert r.status_code == 303, r.text


@pytest.fixture
async def trader(stack):
    """A logged-in browser-like client: (client, csrf token)."""
    client, csrf = await login(stack)
    yield client, csrf
    await client.aclose()


def htmx(csrf: str) -> dict[str, str]:
    return {"HX-Request": "true", "X-CSRFToken": csrf}


async def test_dashboard_without_kite_explains_in_words(trader):
    client, csrf = trader
    r = await client.get("/")
    assert r.status_code == 200, r.text
    html = r.text
    assert 'sse-connect="/sse"' in html and f'"X-CSRFToken": "{csrf}"' in html
    for panel in ("status-bar", "live", "strategies", "ticks", "signals", "orders", "positions", "risk", "chart"):
        assert f'id="{panel}"' in html, panel
    assert "Connect Kite" in html and 'href="/auth/kite/login"' in html
    assert "connect your Kite account first" in html  # account panel: the facade's words
    assert 'id="strategy-select"' in html and 'name="fast"' in html  # form generated from the catalog
    r = await client.post("/ui/live/start", data={"tokens": "256265"}, headers={"HX-Request": "true"})
    assert r.status_code == 403  # no CSRF token, no action


async def test_strategy_form_generated_validated_added_removed(trader):
    client, csrf = trader
    r = await client.get("/ui/strategies/form", params={"strategy": "rsi"}, headers=htmx(csrf))
    assert r.status_code == 200 and 'id="strategy-fields"' in r.text and 'name="fast"' not in r.text
    # out of bounds: caught by the form, shown next to the field, values kept
    r = await client.post("/ui/strategies", data={"strategy": "ema_crossover", "fast": "1", "slow": "8"},
                          headers=htmx(csrf))
    assert r.status_code == 200
    assert re.search(r'id="error-fast"[^>]*>fast: 1 is out of range \(allowed 2 to 200\)', r.text), r.text
    assert 'name="slow" value="8"' in r.text
    # a cross-field rule: refused by the strategy worker, which names the field
    r = await client.post("/ui/strategies", data={"strategy": "ema_crossover", "fast": "9", "slow": "8"},
                          headers=htmx(csrf))
    assert 'id="error-fast"' in r.text and "shorter than" in r.text
    r = await client.post("/ui/strategies", data={"strategy": "ema_crossover", "fast": "3", "slow": "8",
                                                  "reverse": "true"}, headers=htmx(csrf))
    assert r.status_code == 200 and 'id="strategy-added"' in r.text
    sid = re.search(r'id="strategy-(ema_crossover-[0-9a-f]+)"', r.text).group(1)
    r = await client.delete(f"/ui/strategies/{sid}", headers=htmx(csrf))
    assert r.status_code == 200 and f'id="strategy-{sid}"' not in r.text
    r = await client.delete(f"/ui/strategies/{sid}", headers=htmx(csrf))
    assert "no strategy" in r.text  # removing twice: said in words, not a 500


async def test_search_start_stop_report(trader, gw_sim):
    client, csrf = trader
    await connect_kite(client, gw_sim)
    r = await client.get("/ui/symbols/search", params={"q": "NIFTY 50"}, headers=htmx(csrf))
    assert r.status_code == 200 and "NIFTY 50" in r.text
    token = re.search(r"token=(\d+)&amp;label=NSE%3ANIFTY%2050", r.text).group(1)
    r = await client.get("/ui/symbols/pick", params={"token": token, "label": "NSE:NIFTY 50"}, headers=htmx(csrf))
    assert f'name="tokens" value="{token}"' in r.text
    r = await client.get("/ui/symbols/pick", params={"token": "x"}, headers=htmx(csrf))
    assert r.status_code == 400 and "token" in r.text
    r = await client.post("/ui/live/start", data={}, headers=htmx(csrf))
    assert "pick at least one symbol" in r.text
    r = await client.post("/ui/live/start", data={"tokens": token}, headers=htmx(csrf))
    assert r.status_code == 200 and "Live on NSE:NIFTY 50" in r.text, r.text
    assert r.headers["HX-Trigger"] == "kta:status"
    r = await client.get("/ui/status", headers=htmx(csrf))
    assert "Kite connected" in r.text and "live on 1 symbol" in r.text
    html = (await client.get("/")).text
    assert "Kite connected" in html and f'value="{token}"' in html  # picked symbols survive a reload
    r = await client.post("/ui/live/stop", headers=htmx(csrf))
    assert r.status_code == 200 and 'id="eod-report"' in r.text and "/api/journal/trades.csv" in r.text
    assert "Stopped: execution, strategy, ticker worker(s) confirmed." in r.text
    r = await client.get("/ui/account", headers=htmx(csrf))
    assert "Demo Trader" in r.text and "₹" in r.text and "error-box" not in r.text
    r = await client.get("/ui/holdings", headers=htmx(csrf))
    assert "<tbody>" in r.text and "error-box" not in r.text
    r = await client.get("/ui/positions", headers=htmx(csrf))
    assert 'id="positions-table"' in r.text and 'id="day-pnl"' in r.text
    for path in ("/ui/orders", "/ui/signals", "/ui/risk", "/ui/report", "/ui/strategies"):
        r = await client.get(path, headers=htmx(csrf))
        assert r.status_code == 200 and "error-box" not in r.text, (path, r.text[:500])
    r = await client.post("/ui/risk/reset", headers=htmx(csrf))
    assert 'id="kill-switch-state">ACTIVE<' in r.text and r.headers["HX-Trigger"] == "kta:status"
    r = await client.get("/ui/option-chain", params={"underlying": "NIFTY"}, headers=htmx(csrf))
    assert r.status_code == 200 and 'id="chain-atm"' in r.text and "PCR" in r.text, r.text[:2000]
    r = await client.get("/ui/option-chain", params={"underlying": "NOPE"}, headers=htmx(csrf))
    assert "no options on" in r.text


async def test_a_strategy_can_be_given_its_own_symbols(trader, gw_sim):
    client, csrf = trader
    await connect_kite(client, gw_sim)
    form = {"strategy": "rsi"}
    r = await client.post("/ui/strategies", data={**form, "symbols": "NSE:INFY, NSE:<b>NOPE</b>"}, headers=htmx(csrf))
    assert r.status_code == 200 and 'id="strategy-added"' not in r.text
    error = re.search(r'id="error-symbols">([^<]*)<', r.text)
    assert error and "unknown symbol" in error.group(1) and "&lt;b&gt;NOPE&lt;/b&gt;" in error.group(1)
    assert 'value="NSE:INFY, NSE:&lt;b&gt;NOPE&lt;/b&gt;"' in r.text  # what was typed is kept, escaped
    r = await client.post("/ui/strategies", data={**form, "symbols": "NSE:INFY"}, headers=htmx(csrf))
    sid = re.search(r'id="strategy-added">Added ([^.]+)\.', r.text).group(1)
    listed = {s["strategy_id"]: s for s in (await client.get("/api/strategies")).json()}
    assert listed[sid]["tokens"] == [408065]  # NSE:INFY, as Kite numbers it
    r = await client.post("/ui/strategies", data=form, headers=htmx(csrf))
    blank = re.search(r'id="strategy-added">Added ([^.]+)\.', r.text).group(1)
    listed = {s["strategy_id"]: s for s in (await client.get("/api/strategies")).json()}
    assert listed[blank]["tokens"] == []  # no symbols of its own: it trades what is started live
