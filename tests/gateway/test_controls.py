"""The operator's controls through the real stack: risk limits edited on the dashboard and by the API are
in force for the very next signal, and a bad value is named next to its field."""

from __future__ import annotations

import re

from shared import subjects
from tests.execution_worker.kit import signal
from tests.gateway.test_books import trader  # noqa: F401 - the logged-in, Kite-connected client
from tests.helpers import eventually


def hx(csrf: str) -> dict[str, str]:
    return {"HX-Request": "true", "X-CSRFToken": csrf}


async def test_limits_edited_on_the_dashboard_hold_for_the_next_signal(trader, bus):  # noqa: F811
    client, csrf = trader
    form = (await client.get("/ui/limits", headers=hx(csrf))).text
    values = dict(re.findall(r'name="(\w+)" value="([^"]*)"', form))
    assert values["max_daily_loss"] and values["max_position_qty"]
    r = await client.post("/ui/limits", headers=hx(csrf), data={**values, "max_position_qty": "0",
                                                                "max_daily_loss": "lots"})
    assert 'id="error-limit-max_position_qty"' in r.text and 'id="error-limit-max_daily_loss"' in r.text
    assert 'value="lots"' in r.text and 'id="limits-saved"' not in r.text
    r = await client.post("/ui/limits", headers=hx(csrf), data={**values, "max_position_qty": "3",
                                                                "max_daily_loss": "25000"})
    assert 'id="limits-saved"' in r.text and r.headers["HX-Trigger"] == "kta:status"
    limits = (await client.get("/api/risk/limits")).json()["limits"]
    assert limits["max_position_qty"] == 3 and limits["max_daily_loss"] == 25_000_00
    assert "₹25,000.00" in (await client.get("/ui/risk", headers=hx(csrf))).text

    big = signal("limits-big", qty=5, strategy_id="limits-test")
    await bus.js_publish(subjects.signals("DEMO01"), big, msg_id=big.id)

    async def decided():
        signals = (await client.get("/api/journal", params={"limit": 200})).json()["signals"]
        return next((s for s in signals if s["id"] == big.id), None)
    row = await eventually(decided, 30, "the big signal decided")
    assert (row["decision"], row["code"]) == ("refused", "POSITION_SIZE")  # the new limit, at once

    r = await client.put("/api/risk/limits", headers={"X-CSRF-Token": csrf}, json={"max_position_qty": 0})
    assert r.status_code == 400 and "max_position_qty" in r.text
    r = await client.put("/api/risk/limits", headers={"X-CSRF-Token": csrf}, json={"max_position_qty": 100})
    assert r.status_code == 200 and (await client.get("/api/risk/limits")).json()["limits"]["max_position_qty"] == 100

