"""The backtests page in real headless Chromium against the real gateway and strategy worker: the params
form from the catalog, a run with its progress, the metrics table, the equity and price charts, two runs
side by side, a bad symbol named next to its field; no JavaScript error, no CSP violation."""

from __future__ import annotations

import pytest
from playwright.async_api import async_playwright, expect

from gateway import users
from shared import natsd
from strategy_worker.main import amain as strategy_main
from tests.backtest.kit import seed_store
from tests.gateway.conftest import serve
from tests.helpers import running, stack_settings, wait_health

pytestmark = pytest.mark.slow(seconds=20)

pytestmark = pytest.mark.browser


@pytest.fixture
async def site(nats_server, data_dir, bus):
    settings = stack_settings(nats_server, data_dir, gateway_port=natsd.free_port(), env="dev")
    users.ensure_demo_user(settings)
    days = seed_store(settings.data_path, days=4)
    # the gateway first: its build holds the loop (tests.gateway.conftest.serve_with_workers)
    async with serve(settings) as gw, running(strategy_main, settings):
        await wait_health(bus, "strategy", timeout=40)
        yield gw.url, days


async def run(page, fast: int, slow: int) -> None:
    await page.fill("input[name='param.fast']", str(fast))
    await page.fill("input[name='param.slow']", str(slow))
    await page.click("#bt-form button[type=submit]")


async def test_backtests_page(site, chromium, tmp_path):
    url, days = site
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        page = await (await browser.new_context(viewport={"width": 1400, "height": 1000})).new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
        try:
            await page.goto(url + "/login")
            await page.fill("input[name=zerodha_id]", "DEMO01")
            await page.fill("input[name=email]", "demo@kta.local")
            await page.click("button[type=submit]")
            code = (await page.locator("#dev-otp").inner_text()).strip()
            await page.fill("input[name=otp]", code)
            await page.click("button[type=submit]")
            await expect(page).to_have_url(url + "/")
            await page.click("#nav-backtests")
            await expect(page.locator("#bt-strategy option")).not_to_have_count(0)
            await expect(page.locator("input[name='param.fast']")).to_have_value("50")  # the schema's default
            await page.fill("input[name=symbols]", "INFY,TCS")
            await page.fill("input[name=start]", str(days[1]))
            await page.fill("input[name=end]", str(days[-1]))
            await page.select_option("select[name=interval]", "minute")
            await run(page, 5, 20)
            await expect(page.locator(".backtest-progress[data-state=done]")).to_have_count(1, timeout=60_000)
            table = page.locator("#bt-metrics-table")
            await expect(table.locator("tr", has_text="trades")).to_be_visible()
            assert await page.locator("#bt-equity canvas").count() > 0
            assert await page.locator("#bt-price canvas").count() > 0
            await expect(page.locator("#bt-symbol option")).to_have_count(2)
            await expect(page.locator("#bt-symbols tr")).to_have_count(3)  # header + INFY + TCS
            title = page.locator("#bt-title")  # the params as a trader reads them, not JSON
            await expect(title).to_contain_text("ema_crossover on INFY, TCS")
            await expect(title).to_contain_text("fast=5, slow=20")
            assert "{" not in await title.inner_text() and '"' not in await title.inner_text()
            money = await table.locator("td.num").all_inner_texts()
            assert money and not any("₹-" in cell for cell in money), money  # -₹62.44, as on the dashboard
            await run(page, 9, 30)
            await expect(page.locator(".backtest-progress[data-state=done]")).to_have_count(2, timeout=60_000)
            picks = page.locator("#bt-runs input[type=checkbox]:not([disabled])")
            await expect(picks).to_have_count(2)
            await picks.nth(0).check()
            await picks.nth(1).check()
            await expect(table.locator("tr").first.locator("th")).to_have_count(3)  # two runs side by side
            await expect(title).to_contain_text(" vs ")
            await page.screenshot(path=str(tmp_path / "backtests.png"), full_page=True)
            await page.fill("input[name=symbols]", "NOSUCH")
            await page.click("#bt-form button[type=submit]")
            await expect(page.locator(".field-error", has_text="NOSUCH")).to_contain_text("symbols")
        finally:
            await browser.close()
    assert not errors, errors
