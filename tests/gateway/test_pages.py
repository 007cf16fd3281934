"""The dashboard's pages and HTMX partials against the gateway under uvicorn, the three workers
in-process and a kite_sim: what a trader sees, errors in words, forms generated from the catalog."""

from __future__ import annotations

import re
from contextlib import aclosing

import msgspec
import pytest

from shared import natsd
from tests.gateway.conftest import login, serve, serve_with_workers
from tests.helpers import eventually
from tests.simkit import request_token

pytestmark = pytest.mark.slow(seconds=13)


@pytest.fixture
async def stack(gw_settings, bus):
    async with serve_with_workers(gw_settings, bus) as gw:
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
    # an emptied field is named, every bad field at once, never a silent default
    r = await client.post("/ui/strategies", data={"strategy": "ema_crossover", "fast": "", "slow": "1000",
                                                  "atr_stop": "x"}, headers=htmx(csrf))
    assert 'id="strategy-added"' not in r.text
    assert re.search(r'id="error-fast"[^>]*>fast: a value is needed \(default 50\)', r.text), r.text
    assert 'id="error-slow"' in r.text and 'id="error-atr_stop"' in r.text
    assert 'id="param-fast" name="fast" value=""' in r.text  # what was typed stays, flagged
    assert 'aria-describedby="error-slow"' in r.text
    r = await client.post("/ui/strategies", data={"strategy": "ema_crossover", "fast": "3", "slow": "8",
                                                  "reverse": "true"}, headers=htmx(csrf))
    assert r.status_code == 200 and 'id="strategy-added"' in r.text
    assert 'title="fast=3, slow=8, atr_stop=2.0' in r.text  # the params tooltip is text, not JSON
    sid = re.search(r'id="strategy-(ema_crossover-[0-9a-f]+)"', r.text).group(1)
    r = await client.delete(f"/ui/strategies/{sid}", headers=htmx(csrf))
    assert r.status_code == 200 and f'id="strategy-{sid}"' not in r.text
    r = await client.delete(f"/ui/strategies/{sid}", headers=htmx(csrf))
    assert "no strategy" in r.text  # removing twice: said in words, not a 500


async def test_search_start_stop_report(trader, gw_sim, gw_settings):
    client, csrf = trader
    await connect_kite(client, gw_sim)
    r = await client.get("/ui/symbols/search", params={"q": "NIFTY 50"}, headers=htmx(csrf))
    assert r.status_code == 200 and "NIFTY 50" in r.text
    token = re.search(r"token=(\d+)&amp;label=NSE%3ANIFTY%2050", r.text).group(1)
    r = await client.get("/ui/symbols/pick", params={"token": token, "label": "NSE:NIFTY 50"}, headers=htmx(csrf))
    assert f'name="tokens" value="{token}"' in r.text
    r = await client.get("/ui/symbols/pick", params={"token": token, "label": "NSE:NIFTY 50", "tokens": token},
                         headers=htmx(csrf))
    assert r.status_code == 200 and r.text == ""  # already picked: no second chip
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
    await named_by_a_restarted_gateway(gw_settings, token)
    r = await client.post("/ui/live/stop", headers=htmx(csrf))
    assert r.status_code == 200 and 'hx-get="/ui/report" hx-trigger="load"' in r.text  # the report loads next
    assert "Stopped: execution, strategy, ticker worker(s) confirmed; open positions kept, each protected" in r.text
    report = (await client.get("/ui/report", headers=htmx(csrf))).text
    assert 'id="eod-report"' in report and "/api/journal/trades.csv" in report
    # the stop's own reply carries what it changed, out of band: the pill, the note, the strategies
    bar = re.search(r'<div id="status-bar"[^>]*>', r.text).group(0)
    assert 'hx-swap-oob="true"' in bar and 'data-ts="' in bar
    assert '<span class="pill" id="live-pill">stopped</span>' in r.text and "live on" not in r.text
    assert re.search(r'<div id="live-result" hx-swap-oob="true"><div class="note-box" id="live-note">Stopped', r.text)
    assert 'id="strategy-list-wrap"' in r.text
    assert "Trading allowed" in r.text and "kill switch: ACTIVE" not in r.text.replace('title="kill switch: ACTIVE', "")
    assert '<span class="pill" id="live-pill">stopped</span>' in (await client.get("/ui/status", headers=htmx(csrf))).text
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
    assert 'id="kill-switch-state">Trading allowed<' in r.text and r.headers["HX-Trigger"] == "kta:status"
    r = await client.get("/ui/option-chain", params={"underlying": "NIFTY"}, headers=htmx(csrf))
    assert r.status_code == 200 and 'id="chain-atm"' in r.text and "PCR" in r.text, r.text[:2000]
    r = await client.get("/ui/option-chain", params={"underlying": "NOPE"}, headers=htmx(csrf))
    assert "no options on" in r.text
    # the expiry picked for NIFTY does not follow the trader to BANKNIFTY (a different weekday)
    nifty = re.search(r'id="chain-expiry-shown">([0-9-]+)<', (await client.get(
        "/ui/option-chain", params={"underlying": "NIFTY"}, headers=htmx(csrf))).text).group(1)
    r = await client.get("/ui/option-chain", params={"underlying": "BANKNIFTY", "expiry": nifty, "shown": "NIFTY"},
                         headers=htmx(csrf))
    assert "error-box" not in r.text and 'id="chain-atm"' in r.text
    bank = (await client.get("/api/option-chain", params={"underlying": "BANKNIFTY"})).json()
    assert re.search(r'id="chain-expiry-shown">([0-9-]+)<', r.text).group(1) == bank["expiry"]
    assert "Bid</th>" in r.text and "Ask</th>" in r.text


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
    assert listed[blank]["tokens"] == [] and listed[blank]["follows_live"]  # it trades what each Start trades
    r = await client.post("/ui/strategies", data={"strategy": "iron_condor", "symbols": "NSE:INFY"}, headers=htmx(csrf))
    error = re.search(r'id="error-symbols">([^<]*)<', r.text)  # kite_sim lists no INFY options
    assert error and "no option chain for INFY" in error.group(1) and 'id="strategy-added"' not in r.text
    r = await client.post("/ui/strategies", data={"strategy": "iron_condor"}, headers=htmx(csrf))
    condor = re.search(r'id="strategy-added">Added ([^.;]+)\.', r.text).group(1)
    r = await client.post("/ui/live/start", data={"tokens": ["408065", "256265"]}, headers=htmx(csrf))
    assert f"Not traded: {condor} skips INFY (no option chain)." in r.text, r.text
    row = r.text.split(f'id="strategy-{condor}"')[1].split("</tr>")[0]
    assert "live symbols (1)" in row and "not INFY: no option chain" in row
    assert "live symbols (2)" in r.text.split(f'id="strategy-{blank}"')[1].split("</tr>")[0]  # rsi: both
    await client.post("/ui/live/stop", headers=htmx(csrf))


async def test_a_browser_never_gets_a_raw_json_error_page(gateway):
    client, csrf = await login(gateway)
    browser = {"Accept": "text/html,application/xhtml+xml"}
    async with aclosing(client):
        r = await client.get("/no/such/page", headers=browser)
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
        assert 'id="error-page"' in r.text and "Nothing here" in r.text and 'href="/"' in r.text
        r = await client.get("/ui/symbols/pick", params={"token": "<x>"}, headers=browser)
        assert r.status_code == 400 and 'id="error-detail"' in r.text and "token" in r.text and "<x>" not in r.text
        r = await client.get("/api/strategies", headers=browser)  # an API stays JSON (503: no workers here)
        assert r.headers["content-type"].startswith("application/json")
        r = await client.get("/ui/symbols/pick", params={"token": "x"}, headers={**browser, "HX-Request": "true"})
        assert r.status_code == 400 and r.json()["status_code"] == 400  # HTMX: JSON, kta.js words it
    async with aclosing(gateway.client()) as anonymous:
        r = await anonymous.get("/auth/kite/callback", params={"status": "success"}, headers=browser)
        assert r.status_code == 303 and r.headers["location"] == "/login"
        r = await anonymous.get("/api/status", headers=browser)
        assert r.status_code == 401



async def named_by_a_restarted_gateway(gw_settings, token: str) -> None:
    """A second gateway, started while the trader is live (a restart), names the live symbols from its first
    page: the instrument list is loaded at start through a connected user (the chips read "256265" and the tick
    rows bare tokens until someone searched for a symbol)."""
    async with serve(msgspec.structs.replace(gw_settings, gateway_port=natsd.free_port())) as gw:
        await eventually(lambda: gw.services.trading.instruments.rows, 20, "the instrument list loaded at start")
        client, _ = await login(gw)
        async with aclosing(client):
            html = (await client.get("/")).text
        assert f'data-token="{token}"><input type="hidden" name="tokens" value="{token}">NSE:NIFTY 50<' in html
