"""The trader's desk in a real headless Chromium against the real stack on loopback (nats-server, kite_sim,
the three workers, the gateway under uvicorn, a local SMTP server and a local webhook receiver).

An alert webhook added on the settings page; a position limit set from the dashboard's Risk panel; on the
order page an INFY order above that limit refused next to the lots field, a LIMIT below the market accepted,
modified and cancelled from its row of the order book, an SL-M BUY above the market refused without its trigger
(named), then waiting TRIGGER PENDING, its trigger moved and the order cancelled; Halt now trips the kill switch and the alert reaches
the mail server, the webhook and the activity panel; a manual position closed by Square off all, another by
Stop with "square them off"; every page stays under 200 KB; on a phone the top bar is one line. Every wait is on a page element or a delivery."""

from __future__ import annotations

import asyncio
import re
from decimal import ROUND_HALF_EVEN, Decimal
from email.message import Message

import pytest
from playwright.async_api import Page, expect

from gateway import users
from gateway.templating import price_paise
from shared import ist, natsd
from tests.alertkit import smtp_server, text_of, webhook_server
from tests.browser.test_journey import connect_kite, log_in, page, shots  # noqa: F401 - fixtures
from tests.gateway.conftest import serve_with_workers
from tests.helpers import eventually, stack_settings
from tests.simkit import start_sim

pytestmark = [pytest.mark.slow(seconds=49), pytest.mark.browser, pytest.mark.timeout(180)]

PAGE_WEIGHT = 200_000  # bytes: what a page may weigh however long the day


@pytest.fixture
async def desk_stack(nats_server, tmp_path, bus):
    port = natsd.free_port()
    sim = start_sim(tmp_path, speed=30.0, redirect_url=f"http://127.0.0.1:{port}/auth/kite/callback")
    data = tmp_path / "var"
    data.mkdir()
    try:
        with smtp_server() as (inbox, smtp_port):
            async with webhook_server() as hook:
                settings = stack_settings(nats_server, data, sim, gateway_port=port, env="dev",
                                          smtp_host="127.0.0.1", smtp_port=smtp_port, smtp_starttls=False,
                                          smtp_from="kta@test.local")
                users.ensure_demo_user(settings)
                async with serve_with_workers(settings, bus) as gw:
                    yield gw, inbox, hook, sim
    finally:
        sim.stop()


def on_tick(last: float, fraction: float) -> tuple[str, int]:
    """``last`` × ``fraction`` on the ₹0.05 grid: (as typed, in paise)."""
    paise = int((Decimal(str(last)) * Decimal(str(fraction)) * 20).quantize(Decimal(1), ROUND_HALF_EVEN)) * 5
    return f"{paise / 100:.2f}", paise


async def add_webhook(page: Page, url: str, hook) -> None:
    await page.goto(url + "/settings")
    await page.select_option("#channel-kind", "apprise")
    await page.fill("#channel-target", f"json://{hook.url}/kta/deskhook")
    await page.fill("#channel-label", "desk hook")
    await page.select_option("#channel-severity", "warning")
    await page.click("#add-channel")
    await expect(page.locator("#channel-list tr", has_text="desk hook")).to_be_visible()


async def set_position_limit(page: Page, url: str, qty: int) -> None:
    await page.goto(url + "/")
    await page.click("#limits-editor summary")
    await page.fill("#limit-max_position_qty", str(qty))
    await page.click("#save-limits")
    await expect(page.locator("#limits-saved")).to_contain_text("in force")


async def pick_infy(page: Page) -> float:
    """INFY picked in the order form by search; its last price as the form shows it."""
    await page.locator("#order-symbol-search").press_sequentially("INFY", delay=20)
    hit = page.locator("#order-symbol-results li", has_text="NSE · EQ").filter(has_text="INFY").first
    await hit.locator("button.pick").click()
    await expect(page.locator("#order-picked b").first).to_have_text("NSE:INFY")
    return float(await page.locator("#order-quote").get_attribute("data-last"))


async def next_about(queue_next, words: str) -> tuple:
    """The next delivery whose text mentions ``words`` (other alerts may arrive first)."""
    for _ in range(10):
        item = await queue_next()
        text = " ".join(str(x["Subject"]) + text_of(x) if isinstance(x, Message) else str(x) for x in item)
        if words.lower() in text.lower():
            return item
    raise AssertionError(f"no delivery about {words!r}")


async def test_order_entry_modify_cancel_halt_alerts_square_off(desk_stack, page, shots):  # noqa: F811
    gw, inbox, hook, sim = desk_stack
    url = gw.url
    await log_in(page, url, shots)
    await connect_kite(page, url)
    await add_webhook(page, url, hook)
    await set_position_limit(page, url, 3)

    await page.goto(url + "/orders")
    last = await pick_infy(page)
    await page.fill("#order-lots", "5")
    await page.click("#place-order")  # above the limit: risk's refusal next to the lots
    await expect(page.locator("#error-order-lots")).to_contain_text("limit 3")
    await expect(page.locator("#order-lots")).to_have_value("5")  # the form keeps what was typed

    typed, paise = on_tick(last, 0.97)
    await page.fill("#order-lots", "1")
    await page.select_option("#order-type", "LIMIT")
    await page.fill("#order-price", typed)
    tag = await place_and_find(page, "OPEN", "LIMIT", paise)
    await page.screenshot(path=str(shots / "screenshot-orders.png"), full_page=True)

    await modify_then_cancel(page, tag, "price", *on_tick(last, 0.96), "OPEN")

    # an SL-M BUY above the market: its trigger asked for by name, then it waits TRIGGER PENDING in the book,
    # its trigger is moved from the row and it is cancelled
    await page.select_option("#order-type", "SL-M")
    await page.fill("#order-price", "")
    await page.click("#place-order")
    await expect(page.locator("#error-order-trigger_price")).to_contain_text("trigger")
    above, above_paise = on_tick(last, 1.05)
    await page.fill("#order-trigger", above)
    tag = await place_and_find(page, "TRIGGER PENDING", "SL-M", above_paise)
    await modify_then_cancel(page, tag, "trigger", *on_tick(last, 1.06), "TRIGGER PENDING")
    await an_order_cancelled_before_the_stream_opened(page, url, last)

    await page.goto(url + "/")
    await page.click("#halt")
    await expect(page.locator("#kill-pill")).to_have_text("Halted")
    await expect(page.locator("#control-note")).to_contain_text("Halted")
    _, mail = await next_about(inbox.next_mail, "Kill switch")
    assert "demo@kta.local" in mail["To"] and "HALTED" in (mail["Subject"] + text_of(mail)).upper()
    path, body = await next_about(hook.next_post, "Kill switch")
    assert path.strip("/") == "kta/deskhook" and "HALTED" in (body["title"] + body["message"]).upper()
    await expect(page.locator("#events li", has_text=re.compile("kill switch", re.I)).first).to_be_visible()

    await page.click("#reset-risk")
    await expect(page.locator("#kill-pill")).to_have_text("Trading allowed")
    await buy_one_infy(page, url)
    await pnl_on_the_exchange_clock(page, url, sim)
    await expect(page.locator("#square-off")).to_have_attribute("hx-confirm", re.compile("entries stay off until you reset"))
    await page.click("#square-off")
    await expect(page.locator("#control-note")).to_contain_text("1 position being closed")
    await expect(page.locator("#control-note")).to_contain_text("New entries stay off until you reset the kill switch")
    await expect(page.locator("#kill-pill")).to_have_text("Halted")  # entries stay off until the reset
    await eventually(lambda: manual_flat(page, url), 30, "the manual INFY position squared off")
    await page.click("#reset-risk")
    await expect(page.locator("#kill-pill")).to_have_text("Trading allowed")

    await buy_one_infy(page, url)  # Stop, asked to square off: nothing is left open
    await page.goto(url + "/")
    await page.select_option("#on-stop", "square_off")
    await page.click("#stop")
    await expect(page.locator("#live-note")).to_contain_text("open positions squared off", timeout=30_000)
    await eventually(lambda: manual_flat(page, url), 30, "the manual INFY position squared off by Stop")

    for path in ("/", "/orders", "/trades", "/settings", "/backtests"):
        response = await page.request.get(url + path)
        assert response.ok and len(await response.body()) < PAGE_WEIGHT, path

    await on_a_phone(page, url, shots)


async def on_a_phone(page: Page, url: str, shots) -> None:
    """390×844: the sticky top bar is one line (brand, status pills, menu), not three; the pages and
    Log out are in its menu."""
    await page.set_viewport_size({"width": 390, "height": 844})
    for path in ("/", "/orders"):
        await page.goto(url + path)
        bar = await page.locator("#topbar").bounding_box()
        assert bar["height"] <= 40, (path, bar)  # one line: it wrapped to ~132 px (15 % of the screen)
        for part in (".brand", "#menu-toggle") + (("#kill-pill",) if path == "/" else ()):
            box = await page.locator(part).bounding_box()
            assert bar["y"] <= box["y"] and box["y"] + box["height"] <= bar["y"] + bar["height"], (path, part)
        await expect(page.locator("#nav-trades")).to_be_hidden()
    await page.click("#menu-toggle")
    await expect(page.locator("#nav-trades")).to_be_visible()
    await expect(page.locator("#logout")).to_be_visible()
    await page.screenshot(path=str(shots / "screenshot-phone-menu.png"))
    await page.click("#nav-trades")
    await expect(page).to_have_url(url + "/trades")


async def place_and_find(page: Page, status: str, order_type: str, paise: int) -> str:
    """Place the form's order; the tag of its row in the book (``status``, showing ``paise``)."""
    await page.click("#place-order")
    await expect(page.locator("#order-placed")).to_contain_text("Accepted by risk")
    row = page.locator(f'#order-book tr[data-status="{status}"]', has_text=order_type).filter(has_text="manual").first
    await expect(row).to_contain_text(price_paise(paise), timeout=30_000)
    return await row.get_attribute("data-tag")


async def modify_then_cancel(page: Page, tag: str, field: str, typed: str, paise: int, status: str) -> None:
    """From the order's row: ``field`` (price / trigger) modified to ``typed`` (the book shows it, the order
    still ``status``), then the order cancelled."""
    await page.click(f"#modify-{tag}")
    await page.fill(f"#m-{field}-{tag}", typed)
    await page.click(f"#save-modify-{tag}")
    await expect(page.locator(f"#note-{tag}")).to_contain_text("modification sent")
    await expect(page.locator(f"#book-{tag}")).to_contain_text(price_paise(paise), timeout=30_000)
    await expect(page.locator(f"#book-{tag}")).to_have_attribute("data-status", status)
    await page.click(f"#cancel-{tag}")
    await expect(page.locator(f"#book-{tag}")).to_have_attribute("data-status", "CANCELLED", timeout=30_000)


async def buy_one_infy(page: Page, url: str) -> None:
    await page.goto(url + "/orders")
    await pick_infy(page)
    await page.click("#place-order")  # 1 INFY at the market
    await expect(page.locator("#order-placed")).to_contain_text("Accepted by risk")
    await eventually(lambda: manual_held(page, url), 30, "the manual INFY position")


async def an_order_cancelled_before_the_stream_opened(page: Page, url: str, last: float) -> None:
    """An order that changes between the dashboard's render and the opening of its stream is not left as drawn:
    once the stream is open the panel's rows are read again and merged (a straddle's exit leg, filled in that
    moment, stayed "SUBMITTING 0/65" on the page for good). The page's /sse is held while the order is cancelled."""
    csrf = {"X-CSRF-Token": (await (await page.request.get(url + "/auth/csrf")).json())["csrf_token"]}
    placed = await page.request.post(url + "/api/orders", headers=csrf, data={
        "exchange": "NSE", "tradingsymbol": "INFY", "transaction_type": "BUY", "quantity": 1, "order_type": "LIMIT",
        "price": on_tick(last, 0.95)[1]})
    assert placed.ok, await placed.text()
    tag = (await placed.json())["orders"][0]["tag"]

    async def status_is(want: str) -> bool:
        items = (await (await page.request.get(url + "/api/orders?limit=10")).json())["items"]
        return any(o["tag"] == tag and o["status"] == want for o in items)

    await eventually(lambda: status_is("OPEN"), 30, "the LIMIT order working at the broker")
    stream_may_open = asyncio.Event()

    async def hold(route) -> None:
        await stream_may_open.wait()
        await route.continue_()

    await page.route("**/sse", hold)
    await page.goto(url + "/")
    row = page.locator(f"#order-{tag}")
    await expect(row).to_contain_text("OPEN")
    assert (await page.request.delete(url + f"/api/orders/{tag}", headers=csrf)).ok
    await eventually(lambda: status_is("CANCELLED"), 30, "the order cancelled at the broker")
    stream_may_open.set()  # its CANCELLED event went out before this page's stream existed
    await expect(row).to_contain_text("CANCELLED")
    await page.unroute("**/sse")
    # a late event of an earlier state (as the stream delivers it to the panel) never takes the row back
    late = await row.evaluate(
        "r => r.outerHTML.replace(/CANCELLED/g, 'OPEN').replace('data-rank=\"3\"', 'data-rank=\"2\"')")
    await page.evaluate("html => document.getElementById('orders-body').dispatchEvent(new CustomEvent("
                        "'htmx:sseBeforeMessage', {detail: {data: html}, cancelable: true, bubbles: true}))", late)
    assert "CANCELLED" in await row.inner_text() and 'data-rank="2"' in late


async def pnl_on_the_exchange_clock(page: Page, url: str, sim) -> None:
    """The dashboard's intraday P&L curve is on the exchange's clock (the sim's, 30× the machine's): every point
    lies between the manual fill's exchange time and the sim's time after the page drew it (it was drawn at the
    machine's time, hours away)."""
    filled = ist.parse((await (await page.request.get(url + "/api/trades?limit=1")).json())["items"][0]["fill_timestamp"])
    await page.goto(url + "/")
    await expect(page.locator("#positions-table")).to_have_attribute("data-exchange-ts", re.compile(r"^[1-9]\d+$"))
    times = await page.evaluate("window.ktaCharts.pnlTimes()")
    sim_now = (await asyncio.to_thread(sim.get, "/sim/clock", timeout=10)).json()["epoch"]
    assert times and all(filled <= t <= sim_now for t in times), (times, filled, sim_now)


async def manual_infy(page: Page, url: str) -> int:
    pnl = await (await page.request.get(url + "/api/pnl")).json()
    manual = next((r for r in pnl["strategies"] if r["strategy"] == "manual"), None)
    return sum(p["quantity"] for p in manual["positions"] if p["tradingsymbol"] == "INFY") if manual else 0


async def manual_held(page: Page, url: str) -> bool:
    return await manual_infy(page, url) == 1


async def manual_flat(page: Page, url: str) -> bool:
    return await manual_infy(page, url) == 0
