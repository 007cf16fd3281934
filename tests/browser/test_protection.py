"""What protects each position, on the dashboard, in a real headless Chromium against the real stack on
loopback (nats-server, kite_sim, the three workers, the gateway under uvicorn).

Three manual entries from the order page: INFY as CNC with a stop and a target (kta protects it with a Kite
GTT OCO), TCS as MIS with a stop (a broker SL order), SBIN as MIS with neither. The positions panel shows,
per position, the GTT's id, stop and target triggers, quantity and status and the SL order's id, trigger,
quantity and status — each the very one the broker holds (read with the test's own Kite session) — and
flags SBIN, and only SBIN, as unprotected. The GTT deleted in Kite outside kta is re-created by kta, and
the panel follows to the new GTT's id without a reload. Every wait is on a page element."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, expect

from gateway import users
from shared import natsd
from shared.kite.client import KiteClient
from tests.browser.test_journey import connect_kite, log_in, page, shots  # noqa: F401 - fixtures
from tests.gateway.conftest import serve_with_workers
from tests.helpers import eventually, stack_settings
from tests.simkit import login, start_sim

pytestmark = [pytest.mark.slow(seconds=40), pytest.mark.browser, pytest.mark.timeout(180)]

PINNED = {"INFY": 1500.0, "TCS": 3200.0, "SBIN": 960.0}  # the sim's prices held still: no stop fires


@pytest.fixture
async def protection_stack(nats_server, tmp_path, bus):
    port = natsd.free_port()
    sim = start_sim(tmp_path, speed=30.0, redirect_url=f"http://127.0.0.1:{port}/auth/kite/callback")
    for symbol, price in PINNED.items():
        sim.admin("price", {"underlying": symbol, "price": price})
    data = tmp_path / "var"
    data.mkdir()
    # a reconciliation pass every 3 s: the GTT deleted in Kite is found and replaced within the test
    settings = stack_settings(nats_server, data, sim, gateway_port=port, env="dev", reconcile_interval=3.0,
                              positions_interval=3.0)
    users.ensure_demo_user(settings)
    try:
        async with serve_with_workers(settings, bus) as gw, \
                KiteClient(sim.api_key, login(sim), root=sim.root) as kite:
            yield gw, kite
    finally:
        sim.stop()


async def enter(page: Page, url: str, symbol: str, product: str, stop: str = "", target: str = "") -> None:
    """One manual BUY at the market from the order page, with the stop / target typed (or none)."""
    await page.goto(url + "/orders")
    await page.locator("#order-symbol-search").press_sequentially(symbol, delay=20)
    hit = page.locator("#order-symbol-results li", has_text="NSE · EQ").filter(
        has=page.locator("b", has_text=re.compile(f"^{symbol}$"))).first
    await hit.locator("button.pick").click()
    await expect(page.locator("#order-picked b").first).to_have_text(f"NSE:{symbol}")
    await page.select_option("#order-product", product)
    await page.fill("#order-stop", stop)
    await page.fill("#order-target", target)
    await page.click("#place-order")
    await expect(page.locator("#order-placed")).to_contain_text("Accepted by risk")


async def at_broker(kite: KiteClient):
    """(INFY's active GTT, TCS's SL order waiting at the broker) once both exist."""
    gtts = [g for g in await kite.gtts() if g.status == "active" and g.condition.tradingsymbol == "INFY"]
    stops = [o for o in await kite.orders() if o.tradingsymbol == "TCS" and o.status == "TRIGGER PENDING"]
    return len(gtts) == 1 and len(stops) == 1 and (gtts[0], stops[0])


async def test_each_position_shows_its_gtt_or_sl_and_an_unprotected_one_is_flagged(protection_stack, page,  # noqa: F811
                                                                                   shots):  # noqa: F811
    gw, kite = protection_stack
    url = gw.url
    await log_in(page, url, shots)
    await connect_kite(page, url)
    await enter(page, url, "INFY", "CNC", stop="1350", target="1650")
    await enter(page, url, "TCS", "MIS", stop="2900")
    await enter(page, url, "SBIN", "MIS")
    gtt, sl = await eventually(lambda: at_broker(kite), 45, "INFY's GTT and TCS's SL at the broker")

    await page.goto(url + "/")
    infy, tcs, sbin = (page.locator(f"#pos-NSE-{s}") for s in ("INFY-CNC", "TCS-MIS", "SBIN-MIS"))
    await expect(infy.locator(".guard-item")).to_have_text(
        f"GTT {gtt.id} · stop 1,350.00 / target 1,650.00 · ×1 · active", timeout=45_000)
    await expect(tcs.locator(".guard-item")).to_have_text(f"SL {sl.order_id} · trigger 2,900.00 · ×1 · TRIGGER PENDING")
    await expect(sbin).to_have_class(re.compile(r"\bunprotected\b"))
    await expect(sbin.locator(".guard-why")).to_contain_text("UNPROTECTED: no stop-loss set")
    for protected in (infy, tcs):
        await expect(protected).not_to_have_class(re.compile(r"\bunprotected\b"))
        await expect(protected.locator(".guard-line")).to_have_attribute("data-state", "protected")
    alarm = page.locator("#unprotected")
    await expect(alarm).to_contain_text("1 position without working protection")
    await expect(alarm.locator("li")).to_have_count(1)
    await expect(alarm.locator("li")).to_contain_text("SBIN")
    await page.eval_on_selector("#positions-live", "e => e.style.maxHeight = 'none'")  # the whole table in the shot
    await page.locator("#positions").screenshot(path=str(shots / "screenshot-protection.png"))

    # deleted in Kite, outside kta: kta places a new GTT and the open panel follows to it, unreloaded
    await kite.delete_gtt(gtt.id)
    new = await eventually(lambda: at_broker(kite), 45, "a new GTT for INFY")
    assert new[0].id != gtt.id
    await expect(infy.locator(".guard-item")).to_have_text(
        f"GTT {new[0].id} · stop 1,350.00 / target 1,650.00 · ×1 · active", timeout=45_000)
