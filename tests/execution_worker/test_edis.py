"""Delivery sells of an account without DDPI against kite_sim's eDIS model (per-account setting): Kite's
428 holds the order (nothing at the broker), the trader gets an alert with the depository's link and sees
the order HELD with it; once the TPIN is entered the same order (same tag) is placed exactly once. A held
order the trader cancels is withdrawn and never sent, even after a later authorisation."""

import httpx
import pytest

from shared import messages as m
from shared import subjects
from shared.kite import tls
from tests.execution_worker.conftest import make_stack
from tests.execution_worker.kit import USER, broker
from tests.helpers import eventually

pytestmark = pytest.mark.slow(seconds=20)


async def ask(bus, cmd, timeout: float = 30.0):
    return await bus.request(subjects.cmd(USER, "execution", type(cmd).__struct_config__.tag), cmd, timeout=timeout)


def delivery_sell(qty: int, client_id: str, symbol: str = "INFY") -> m.PlaceOrder:
    return m.PlaceOrder(exchange=m.Exchange.NSE, tradingsymbol=symbol, quantity=qty, client_id=client_id,
                        transaction_type=m.TransactionType.SELL, product=m.Product.CNC, strategy_id="edis")


async def at_broker(kite, tag: str) -> list:
    return [o for o in await broker(kite.orders) if o.tag == tag]


async def without_ddpi(bus, sim) -> list[m.Alert]:
    """DEMO01 as an account without DDPI; the alerts raised for it from now on."""
    sim.admin("accounts", {"user_id": "DEMO01", "edis": True})
    alerts: list[m.Alert] = []

    async def on_alert(a, msg):
        alerts.append(a)

    await bus.subscribe(subjects.alerts(USER), m.Alert, on_alert)
    return alerts


async def held_sell(bus, alerts: list[m.Alert], qty: int, client_id: str) -> tuple[dict, str]:
    """A delivery sell the depository holds: the order and its authorisation link."""
    held = (await ask(bus, delivery_sell(qty, client_id))).data["orders"][0]
    assert held["state"] == "HELD"
    link = (await eventually(lambda: [a.link for a in alerts if held["tag"] in a.detail], what="alert"))[0]
    return held, link


def tpin(link: str) -> None:
    """The trader on the depository's page: the TPIN form, submitted."""
    assert 'id="tpin"' in httpx.get(link, verify=tls.context()).text
    assert httpx.post(link, data={"tpin": "123456"}, verify=tls.context()).status_code == 200


async def test_a_delivery_sell_is_held_until_the_depository_authorises_it_then_placed_once(bus, sim, data_dir):
    alerts = await without_ddpi(bus, sim)
    try:
        async with make_stack(bus, sim, data_dir) as (_, journal, kite):
            placed = await ask(bus, delivery_sell(2, "edis-1"))
            assert isinstance(placed, m.Ok), placed
            (held,) = placed.data["orders"]
            assert held["state"] == "HELD" and not held["order_id"], held
            assert "needs authorisation at depository" in held["message"] and "authorise at http" in held["message"]
            alert = (await eventually(lambda: [a for a in alerts if a.kind == "authorisation"], what="the alert"))[0]
            assert alert.link.startswith(f"{sim.root}/connect/portfolio/authorise/holdings/{sim.api_key}/")
            assert alert.link in held["message"] and "2 INFY" in alert.title and "Nothing was placed" in alert.detail
            assert not await at_broker(kite, held["tag"])
            assert journal.order_by_tag(held["tag"])["state"] == "HELD"

            tpin(alert.link)
            row = await eventually(lambda: (r := journal.order_by_tag(held["tag"]))["state"] == "COMPLETE" and r,
                                   timeout=30, what="the held sell placed and filled after the authorisation")
            (at,) = await at_broker(kite, held["tag"])  # exactly one order under its tag
            assert at.order_id == row["order_id"] and at.product == "CNC" and at.quantity == 2
            infy = next(h for h in await broker(kite.holdings) if h.tradingsymbol == "INFY")
            assert infy.authorised_quantity == 2

            # two more sells, each held; the trader cancels the first (withdrawn, never sent) and enters the
            # TPIN on ITS link: the watcher sees the new authorisation and sends the one still held, only it
            second, third = [(await ask(bus, delivery_sell(1, f"edis-{n}"))).data["orders"][0] for n in (2, 3)]
            assert second["state"] == third["state"] == "HELD"
            link = (await eventually(lambda: [a.link for a in alerts if second["tag"] in a.detail],
                                     what="its alert"))[0]
            assert isinstance(await ask(bus, m.CancelOrder(tag=second["tag"])), m.Ok)
            gone = journal.order_by_tag(second["tag"])
            assert gone["state"] == "FAILED" and "withdrawn before it was sent" in gone["status_message"]
            tpin(link)
            await eventually(lambda: journal.order_by_tag(third["tag"])["state"] == "COMPLETE", timeout=30,
                             what="the sell still held placed after the authorisation")
            assert not await at_broker(kite, second["tag"])
            assert journal.order_by_tag(second["tag"])["state"] == "FAILED"
            assert len(await at_broker(kite, third["tag"])) == 1
    finally:
        sim.admin("accounts", {"user_id": "DEMO01", "edis": False})


async def test_a_sell_held_when_the_worker_stopped_is_sent_once_after_the_restart(bus, sim, data_dir):
    """The journal keeps a HELD order across a restart; the trader authorised while the worker was down:
    once the restarted worker opens the user's desk (Start, or any command) it sends it (its first look), and
    only that one order exists at the broker."""
    alerts = await without_ddpi(bus, sim)
    try:
        async with make_stack(bus, sim, data_dir) as (_, journal, kite):
            held, link = await held_sell(bus, alerts, 3, "edis-restart")
        tpin(link)  # while no worker runs
        async with make_stack(bus, sim, data_dir, fresh_account=False) as (_, journal, kite):
            assert journal.order_by_tag(held["tag"])["state"] == "HELD"
            started = await bus.request(subjects.cmd(USER, "live", "start_live"), m.StartLive())  # trading resumes
            assert isinstance(started, m.Ok), started
            await eventually(lambda: journal.order_by_tag(held["tag"])["state"] == "COMPLETE", timeout=30,
                             what="the held sell sent after the restart")
            assert len(await at_broker(kite, held["tag"])) == 1
    finally:
        sim.admin("accounts", {"user_id": "DEMO01", "edis": False})


async def test_a_held_sell_modified_keeps_its_place_and_is_sent_with_the_new_terms(bus, sim, data_dir):
    """A HELD order is not at the broker, so a modification (the trader's, or the protector moving a stop)
    changes kta's order: no broker call, no cancel-and-replace, no second authorisation link; the
    depository's authorisation then sends it once, with the new terms."""
    alerts = await without_ddpi(bus, sim)
    try:
        async with make_stack(bus, sim, data_dir) as (_, journal, kite):
            held, link = await held_sell(bus, alerts, 3, "edis-modify")
            modified = await ask(bus, m.ModifyOrder(tag=held["tag"], quantity=2))
            assert isinstance(modified, m.Ok), modified
            row = journal.order_by_tag(held["tag"])
            assert (row["state"], row["quantity"]) == ("HELD", 2) and not row["order_id"]
            assert not await at_broker(kite, held["tag"])
            tpin(link)
            await eventually(lambda: journal.order_by_tag(held["tag"])["state"] == "COMPLETE", timeout=30,
                             what="the amended sell placed after the authorisation")
            (at,) = await at_broker(kite, held["tag"])
            assert at.quantity == 2 and at.filled_quantity == 2
            assert [a.link for a in alerts if held["tag"] in a.detail] == [link]  # one link, never a replacement
    finally:
        sim.admin("accounts", {"user_id": "DEMO01", "edis": False})
