"""The backtests page in real headless Chromium against the real gateway and strategy worker: the params
form from the catalog, a run with its progress, the metrics table, the equity and price charts, two runs
side by side, a bad symbol named next to its field; an iron condor on NIFTY 50 run from the page with its
structures (legs, P&L each) and a stock without options named; no JavaScript error, no CSP violation."""

from __future__ import annotations

import contextlib

import pytest
from playwright.async_api import async_playwright, expect

from gateway import users
from shared import natsd
from strategy_worker.main import amain as strategy_main
from tests.backtest.kit import OPTION_DAYS, seed_options, seed_store
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


@pytest.fixture
async def option_site(nats_server, data_dir, bus):
    settings = stack_settings(nats_server, data_dir, gateway_port=natsd.free_port(), env="dev")
    users.ensure_demo_user(settings)
    seed_options(settings.data_path)
    async with serve(settings) as gw, running(strategy_main, settings):
        await wait_health(bus, "strategy", timeout=40)
        yield gw.url


async def login(page, url: str) -> None:
    await page.goto(url + "/login")
    await page.fill("input[name=zerodha_id]", "DEMO01")
    await page.fill("input[name=email]", "demo@kta.local")
    await page.click("button[type=submit]")
    code = (await page.locator("#dev-otp").inner_text()).strip()
    await page.fill("input[name=otp]", code)
    await page.click("button[type=submit]")
    await expect(page).to_have_url(url + "/")
    await page.click("#nav-backtests")


@contextlib.asynccontextmanager
async def browsing(chromium: str, height: int):
    """A logged-out page in headless Chromium and the JavaScript errors and CSP violations it reports."""
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        try:
            page = await (await browser.new_context(viewport={"width": 1400, "height": height})).new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
            yield page, errors
        finally:
            await browser.close()


async def run(page, fast: int, slow: int) -> None:
    await page.fill("input[name='param.fast']", str(fast))
    await page.fill("input[name='param.slow']", str(slow))
    await page.click("#bt-form button[type=submit]")


async def test_backtests_page(site, chromium, tmp_path):
    url, days = site
    async with browsing(chromium, 1000) as (page, errors):
        await login(page, url)
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
    assert not errors, errors


async def test_an_iron_condor_from_the_page(option_site, chromium, tmp_path):
    url = option_site
    async with browsing(chromium, 1200) as (page, errors):
        await login(page, url)
        await expect(page.locator("#bt-strategy optgroup[label=Options] option")).to_have_count(5)
        await page.select_option("#bt-strategy", "iron_condor")
        await expect(page.locator("#bt-symbols-label")).to_have_text("Underlying")
        await expect(page.locator("input[name=symbols]")).to_have_value("NIFTY 50")
        await expect(page.locator("#bt-options-note")).to_be_visible()
        await expect(page.locator("select[name=interval] option", has_text="day")).to_be_disabled()
        for name in ("lots", "short_delta", "wing_steps", "min_days_to_expiry"):  # size, strikes, expiry rule
            await expect(page.locator(f"input[name='param.{name}']")).to_have_count(1)
        await page.fill("input[name=start]", str(OPTION_DAYS[0]))
        await page.fill("input[name=end]", str(OPTION_DAYS[-1]))
        await page.select_option("select[name=interval]", "minute")
        await page.fill("input[name='param.lots']", "2")
        await page.click("#bt-form button[type=submit]")
        await expect(page.locator(".backtest-progress[data-state=done]")).to_have_count(1, timeout=60_000)
        await expect(page.locator("#bt-title")).to_contain_text("iron_condor on NIFTY 50")
        table = page.locator("#bt-metrics-table")
        await expect(table.locator("tr", has_text="structures")).to_contain_text("6")  # 3 entries, 3 exits
        rows = page.locator("#bt-structures-table tr")
        await expect(rows).to_have_count(4)  # header + one condor a day
        first = rows.nth(1)
        await expect(first).to_contain_text("iron_condor")
        await expect(first).to_contain_text("time exit before the close")
        legs = await first.locator("td").nth(3).inner_text()
        assert legs.count("NIFTY") == 4 and legs.count("BUY 130") == 2 and legs.count("SELL 130") == 2, legs
        money = await rows.locator("td.num").all_inner_texts()
        assert len(money) == 9 and all("₹" in cell for cell in money), money  # every P&L priced from fills
        await expect(page.locator("#bt-symbols tr")).not_to_have_count(1)  # per contract
        assert await page.locator("#bt-price canvas").count() > 0  # NIFTY 50 with where structures opened
        await page.screenshot(path=str(tmp_path / "option-backtest.png"), full_page=True)
        await page.fill("input[name=symbols]", "INFY")
        await page.click("#bt-form button[type=submit]")
        await expect(page.locator(".field-error", has_text="INFY")).to_contain_text("no option contracts of INFY")
    assert not errors, errors
