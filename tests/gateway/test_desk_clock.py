"""The desk follows the exchange's clock, not this machine's: a kite_sim pinned to a trading day that is not
the machine's IST date (as after IST midnight with a paper market still in the previous day). The day the
P&L panel, the trade book and the report cover is the exchange's, and the Activity panel's alerts carry the
exchange's time."""

from __future__ import annotations

import re
import time
from contextlib import aclosing

import pytest

from gateway import users
from shared import ist
from shared.market_calendar import CALENDAR
from tests.gateway.conftest import connect_kite, forget_broker_sessions, login, serve_with_workers
from tests.gateway.test_order_entry import order_form, refusal_of
from tests.gateway.test_pages import htmx
from tests.helpers import eventually, stack_settings
from tests.simkit import start_sim

pytestmark = pytest.mark.slow(seconds=15)

# two trading days before the machine's IST date: never the machine's day, whatever day the suite runs on
PAST = CALENDAR.previous_trading_day(ist.now(time.time()).date(), 2).isoformat()


@pytest.fixture(scope="module")
def past_sim(tmp_path_factory, gateway_port):
    s = start_sim(tmp_path_factory.mktemp("pastsim"), speed=60.0, extra=("--date", PAST),
                  redirect_url=f"http://127.0.0.1:{gateway_port}/auth/kite/callback")
    yield s
    s.stop()


async def test_the_desk_reports_the_exchanges_day_and_time(nats_server, data_dir, past_sim, gateway_port, bus):
    assert PAST != ist.day(time.time())
    settings = stack_settings(nats_server, data_dir, past_sim, gateway_port=gateway_port, env="dev")
    users.ensure_demo_user(settings)
    async with serve_with_workers(settings, bus) as gw:
        client, csrf = await login(gw)
        async with aclosing(client):
            await connect_kite(client, past_sim)

            async def instruments_loaded():
                found = await client.get("/ui/order-entry/search", params={"q": "INFY"}, headers=htmx(csrf))
                return "/ui/order-entry?symbol=NSE%3AINFY" in found.text
            await eventually(instruments_loaded, 30, "the gateway's instruments from the sim")
            r = await client.post("/ui/order-entry", headers=htmx(csrf), data=order_form())
            assert 'id="order-placed"' in r.text, refusal_of(r.text)

            async def filled():
                items = (await client.get("/api/trades", params={"day": "all", "strategy": "manual"})).json()["items"]
                return items or None
            fill = (await eventually(filled, 60, "the manual buy filled and journaled"))[0]
            assert fill["day"] == PAST  # the journal's day is the exchange's (the workers' clock)

            # the P&L panel, the trade book's default day and the report: the exchange's day, with the fill
            pnl = (await client.get("/api/pnl")).json()
            assert pnl["day"] == PAST, pnl["day"]
            manual = [row for row in pnl["strategies"] if row["strategy"] != "total"]
            assert [row["fills"] for row in manual] == [1]
            trades = (await client.get("/trades")).text
            assert f'id="trade-{fill["order_id"]}-{fill["trade_id"]}"' in trades
            report = (await client.get("/ui/report", headers=htmx(csrf))).text
            assert PAST in report

            # an alert (the manual halt's) carries the exchange's time; the Activity panel shows that time
            r = await client.post("/api/risk/halt", headers={"X-CSRF-Token": csrf}, json={"reason": "clock test"})
            assert r.status_code == 200, r.text

            async def halted_alert():
                recent = (await client.get("/api/alerts")).json()
                return next((a for a in recent if a["kind"] == "kill_switch"), None)
            alert = await eventually(halted_alert, 30, "the kill switch's alert recorded")
            assert alert["exchange_ts"] and ist.day(alert["exchange_ts"] / 1e9) == PAST
            page = (await client.get("/")).text
            line = re.search(r'<small class="alert-time" data-exchange-ts="(\d+)"[^>]*>([^<]+)</small>', page)
            assert line and int(line.group(1)) == alert["exchange_ts"], page[page.find('id="activity"'):][:1500]
            assert line.group(2) == ist.now(alert["exchange_ts"] / 1e9).strftime("%H:%M:%S")
            # the Risk panel's reason shows no time of kta's clock (a paper market's 13:29 read 02:28 beside it)
            assert re.search(r'id="risk-reason"[^>]*>clock test</div>', page), page[page.find('id="risk-state"'):][:1500]
            await client.post("/api/risk/reset", headers={"X-CSRF-Token": csrf}, json={"reason": "clock test done"})
    await forget_broker_sessions(bus)
