"""The orders panel names a protective order by what it is now (gateway under uvicorn, the execution worker,
kite_sim): an MIS position's stop-loss turned into a LIMIT at the target when the target is touched shows as the
target, and as the stop again once the price comes back and it moves to the stop's limit (before: "stop_loss"
throughout, the kind it was placed as)."""

from __future__ import annotations

import re
import time
from contextlib import aclosing

from execution_worker.main import amain as execution_main
from shared import messages as m
from shared import subjects
from tests.gateway.conftest import connect_kite, forget_broker_sessions, login
from tests.helpers import eventually, running, wait_health

INFY = 408065
STOP, TARGET = 147000, 152000  # paise: INFY pinned at 1,500


def tick(price: float) -> m.Tick:
    return m.Tick(instrument_token=INFY, mode="full", tradable=True, last_price=price, received_at=time.time_ns())


def shown_kind(panel: str, tag: str) -> str:
    """The kind column (4th) of the order's row in the orders panel."""
    row = re.search(rf'<tr id="order-{tag}".*?</tr>', panel, re.S)
    return re.findall(r"<td[^>]*>(.*?)</td>", row.group(0), re.S)[3] if row else ""


async def test_the_orders_panel_shows_a_stop_turned_target_as_the_target_and_back(gateway, gw_settings, gw_sim, bus):
    await forget_broker_sessions(bus)
    gw_sim.admin("price", {"underlying": "INFY", "price": 1500.0})
    try:
        async with running(execution_main, gw_settings):
            await wait_health(bus, "execution")
            a, csrf = await login(gateway)
            async with aclosing(a):
                await connect_kite(a, gw_sim)
                order = {"exchange": "NSE", "tradingsymbol": "INFY", "transaction_type": "BUY", "quantity": 5,
                         "stop_loss": STOP, "target": TARGET, "client_id": "role-1"}
                r = await a.post("/api/orders", json=order, headers={"X-CSRF-Token": csrf})
                assert r.status_code == 201, r.text

                async def the_stop():
                    page = (await a.get("/api/orders", params={"status": "open", "strategy": "manual"})).json()
                    return [o for o in page["items"] if o["kind"] == "stop_loss" and o["order_id"]]

                (sl,) = await eventually(the_stop, what="the position's stop at the broker")
                assert sl["order_type"] == "SL" and shown_kind((await a.get("/ui/orders")).text, sl["tag"]) == "stop_loss"

                async def panel_says(kind: str, price: float, order_type: str, status: str):
                    await bus.publish(subjects.ticks(INFY), tick(price))
                    row = next(o for o in (await a.get("/api/orders", params={"strategy": "manual"})).json()["items"]
                               if o["tag"] == sl["tag"])
                    if (row["order_type"], row["status"]) != (order_type, status):
                        return False
                    panel = (await a.get("/ui/orders")).text
                    return shown_kind(panel, sl["tag"]) == kind and row.get("role") == kind and row

                # a trade at the target with the market (the sim at 1,500) short of it: the LIMIT waits there
                row = await eventually(lambda: panel_says("target", 1520.0, "LIMIT", "OPEN"),
                                       what="the stop turned into a LIMIT at the target, shown as the target")
                assert (row["kind"], row["price"]) == ("stop_loss", TARGET)  # placed as the stop: its kind stays
                gw_sim.admin("price", {"underlying": "INFY", "price": 1468.0})
                row = await eventually(lambda: panel_says("stop_loss", 1468.0, "LIMIT", "COMPLETE"),
                                       what="back at the stop: the LIMIT moved to the stop's limit and filled")
                assert row["price"] < STOP
    finally:
        gw_sim.admin("price", {"underlying": "INFY", "price": None})
