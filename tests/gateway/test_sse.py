"""The SSE stream: a user's own events only, rendered as escaped HTML fragments, resumable with
Last-Event-ID, with heartbeats; the JSON twin for API clients; logout closes the stream."""

from __future__ import annotations

import json
import time
from contextlib import aclosing

import pytest

from shared import messages as m
from shared import subjects
from tests.gateway.conftest import login, serve
from tests.gateway.sse import COMMENT, SSE
from tests.helpers import eventually


def order(user_id: str, order_id: str, symbol: str = "INFY") -> m.OrderEvent:
    return m.OrderEvent(user_id=user_id, order_id=order_id, tag=f"t{order_id}", exchange="NSE", tradingsymbol=symbol,
                        status=m.OrderStatus.OPEN, state="OPEN", quantity=1, price=150000, ts=time.time_ns())


async def test_sse_delivers_only_the_users_own_events_escaped(gateway, bus):
    client, _ = await login(gateway)
    async with aclosing(client), SSE(client, "/sse") as sse:
        await bus.publish(subjects.orders("DEMO02"), order("DEMO02", "B1", "SECRETB"))
        await bus.publish(subjects.orders("DEMO01"), order("DEMO01", "A1", "<script>alert(1)</script>"))
        snap = m.PositionSnapshot(user_id="DEMO01", ts=time.time_ns(), positions=[
            m.Position(tradingsymbol="INFY", exchange="NSE", quantity=1, pnl=1234)], day_pnl=1234)
        await bus.publish(subjects.positions("DEMO01"), snap)
        ev_id, name, data = await sse.next_event()
        assert name == "orders" and "SECRETB" not in data and "B1" not in data
        assert "<script>" not in data and "&lt;script&gt;" in data
        ev_id2, name, data = await sse.next_event()
        assert name == "positions" and "INFY" in data and int(ev_id2) > int(ev_id)


async def test_sse_resumes_from_last_event_id(gateway, bus):
    client, _ = await login(gateway)
    async with aclosing(client):
        async with SSE(client, "/sse") as sse:
            await bus.publish(subjects.orders("DEMO01"), order("DEMO01", "R1", "FIRSTONE"))
            first_id, _, data = await sse.next_event()
            assert "FIRSTONE" in data
        await bus.publish(subjects.orders("DEMO01"), order("DEMO01", "R2", "MISSEDONE"))
        await bus.nc.flush()
        feed = gateway.services.streams.feeds["DEMO01"]
        await eventually(lambda: any(e.payload.get("order_id") == "R2" for e in feed.ring), 10, "R2 in the ring")
        async with SSE(client, "/sse", {"Last-Event-ID": first_id}) as sse:
            ev_id, name, data = await sse.next_event()
            assert name == "orders" and "MISSEDONE" in data and int(ev_id) > int(first_id)


async def test_order_rows_take_the_exchange_time_from_kites_order_updates(gateway, bus):
    """kta's order events carry kta's clock; Kite's own update for the order id has the exchange's."""
    client, _ = await login(gateway)
    async with aclosing(client), SSE(client, "/sse") as sse:
        await bus.js_publish(subjects.order_updates("DEMO01"), m.BrokerOrderUpdate(
            user_id="DEMO01", received_at=time.time_ns(),
            order={"order_id": "K1", "status": "OPEN", "order_timestamp": "2026-11-25 14:54:51"}))
        feed = gateway.services.streams.feeds["DEMO01"]
        await eventually(lambda: "K1" in feed._order_times, 10, "the broker's order time")
        await bus.publish(subjects.orders("DEMO01"), order("DEMO01", "K1", "STAMPED"))
        await bus.publish(subjects.orders("DEMO01"), order("DEMO01", "K2", "UNSTAMPED"))
        _, _, stamped = await sse.next_event()
        _, _, unstamped = await sse.next_event()
        assert "STAMPED" in stamped and ">14:54:51<" in stamped
        assert "UNSTAMPED" in unstamped and ">14:54:51<" not in unstamped


async def test_api_stream_is_json_and_heartbeats(gw_settings, bus):
    async with serve(gw_settings, heartbeat=0.2) as gw:
        client, csrf = await login(gw)
        async with aclosing(client):
            async with SSE(client, "/api/stream") as sse:
                assert (await sse.next(5)) == COMMENT  # a heartbeat
                await bus.publish(subjects.risk("DEMO01"), m.RiskState(user_id="DEMO01", ts=time.time_ns(),
                                                                       state=m.KillSwitchState.REDUCING, reason="x"))
                ev_id, name, data = await sse.next_event()
                assert name == "risk" and json.loads(data)["state"] == "REDUCING"
                r = await client.post("/auth/logout", json={}, headers={"X-CSRF-Token": csrf})
                assert r.status_code == 200
                assert await sse.next_event() is None  # logout ended the stream


@pytest.mark.parametrize("path", ["/sse", "/api/stream"])
async def test_sse_refuses_without_session(gateway, path):
    async with gateway.client() as c:
        assert (await c.get(path)).status_code == 401
