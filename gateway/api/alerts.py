"""Alert channels, recent alerts and dashboard preferences as JSON (the settings page's API).

Channel targets are write-only: answers show them masked (``tgram://1...f/987``), never in clear."""

from __future__ import annotations

import time
from typing import Annotated, Literal

import msgspec
from litestar import Controller, Request, delete, get, post, put
from litestar.params import Parameter
from msgspec import Meta

from gateway.alert_store import SEVERITIES, Channel
from gateway.notifier import mask, validate_channel
from gateway.prefs import Prefs
from gateway.services import services_of
from gateway.trading import TradingError
from gateway.users import get_user
from shared import messages as m
from shared import subjects

ChannelId = Annotated[int, Parameter(ge=1, le=2**63 - 1, description="the channel's id")]


class ChannelBody(msgspec.Struct, forbid_unknown_fields=True):
    kind: Literal["email", "apprise"]
    target: Annotated[str, Meta(min_length=1, max_length=2000)]
    label: Annotated[str, Meta(max_length=60)] = ""
    min_severity: Literal["info", "warning", "critical"] = "warning"


class TestAlertBody(msgspec.Struct, forbid_unknown_fields=True):
    severity: Literal["info", "warning", "critical"] = "warning"


def shown(c: Channel) -> dict:
    return {"id": c.id, "kind": c.kind, "label": c.label, "target": mask(c.target) if c.kind == "apprise" else c.target,
            "min_severity": c.min_severity, "enabled": c.enabled, "last_result": c.last_result, "last_at": c.last_at}


def _channels(request: Request, user_id: str) -> list[Channel]:
    services = services_of(request)
    user = get_user(services.settings, user_id)
    if user is not None:
        services.alerts.initialise(user_id, user.email)
    return services.alerts.channels(user_id)


class AlertsController(Controller):
    path = "/api"
    tags = ["alerts"]

    @get("/alerts/channels")
    async def channels(self, request: Request, user_id: str) -> list[dict]:
        return [shown(c) for c in _channels(request, user_id)]

    @post("/alerts/channels", status_code=201)
    async def add_channel(self, request: Request, user_id: str, data: ChannelBody) -> dict:
        errors = validate_channel(data.kind, data.target, data.label, data.min_severity)
        if errors:
            field, message = next(iter(errors.items()))
            raise TradingError(400, message, field, "bad_request")
        _channels(request, user_id)
        channel = services_of(request).alerts.add_channel(user_id, data.kind, data.target.strip(), data.label,
                                                          data.min_severity)
        return shown(channel)

    @delete("/alerts/channels/{channel_id:int}", status_code=200)
    async def remove_channel(self, request: Request, user_id: str, channel_id: ChannelId) -> dict:
        if not services_of(request).alerts.remove_channel(user_id, channel_id):
            raise TradingError(404, f"no channel {channel_id}", "channel_id", "not_found")
        return {"removed": channel_id}

    @post("/alerts/channels/{channel_id:int}/test", status_code=200)
    async def test_channel(self, request: Request, user_id: str, channel_id: ChannelId) -> dict:
        services = services_of(request)
        channel = services.alerts.channel(user_id, channel_id)
        if channel is None:
            raise TradingError(404, f"no channel {channel_id}", "channel_id", "not_found")
        if services.notifier is None:
            raise TradingError(503, "the notifier is not running yet")
        outcome = await services.notifier.test(channel, user_id)
        return {"id": channel_id, "ok": outcome.ok, "detail": outcome.detail}

    @get("/alerts")
    async def recent(self, request: Request, user_id: str,
                     limit: Annotated[int, Parameter(ge=1, le=200)] = 50) -> list[dict]:
        return services_of(request).alerts.recent(user_id, limit)

    @post("/alerts/test", status_code=202)
    async def test_alert(self, request: Request, user_id: str, data: TestAlertBody | None = None) -> dict:
        """A test alert through KTA_ALERTS: the notifier delivers it like any other."""
        severity = (data or TestAlertBody()).severity
        alert = m.Alert(user_id=user_id, kind="test", severity=severity, title="Test alert",
                        detail="Sent through the API.", key=f"test:{time.time_ns()}", source="gateway",
                        ts=time.time_ns())
        await services_of(request).bus.js_publish(subjects.alerts(user_id), alert, msg_id=alert.key)
        return {"published": alert.key, "severity": severity, "severities": list(SEVERITIES)}

    @get("/prefs")
    async def prefs(self, request: Request, user_id: str) -> dict:
        return msgspec.to_builtins(services_of(request).prefs.get(user_id))

    @put("/prefs", status_code=200)
    async def set_prefs(self, request: Request, user_id: str, data: Prefs) -> dict:
        return msgspec.to_builtins(services_of(request).prefs.set(user_id, data))
