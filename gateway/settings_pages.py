"""``/settings``: the trader's alert channels (add, switch on/off, send a test, remove), a test alert
through the whole pipeline, the recent alerts with what became of them, and the dashboard's
preferences (theme, keyboard shortcuts). Every form answers with its own section; a bad field is
named next to itself."""

from __future__ import annotations

import time

from litestar import Controller, Request, delete, get, post
from litestar.response import Template

from gateway.alert_store import AlertStore
from gateway.egress_settings import egress_state
from gateway.notifier import mask, validate_channel
from gateway.page_context import page, partial
from gateway.prefs import Prefs
from gateway.services import services_of
from gateway.users import get_user
from shared import messages as m
from shared import subjects


def channels_context(request: Request, user_id: str, **extra) -> dict:
    services = services_of(request)
    store: AlertStore = services.alerts
    user = get_user(services.settings, user_id)
    if user is not None:
        store.initialise(user_id, user.email)
    rows = [{"channel": c, "masked": mask(c.target) if c.kind == "apprise" else c.target or "(unreadable)"}
            for c in store.channels(user_id)]
    return {"channels": rows, "smtp": bool(services.settings.smtp_host), "values": {}, "errors": {}, **extra}


def recent_context(request: Request, user_id: str) -> dict:
    return {"recent": services_of(request).alerts.recent(user_id, 30)}


class SettingsController(Controller):
    include_in_schema = False

    @get("/settings")
    async def settings(self, request: Request, user_id: str) -> Template:
        return page("settings.html", request, **channels_context(request, user_id), **recent_context(request, user_id),
                    egress=await egress_state(services_of(request).settings, user_id))

    @post("/ui/settings/prefs", status_code=200)
    async def save_prefs(self, request: Request, user_id: str) -> Template:
        form = await request.form()
        theme = str(form.get("theme") or "")
        errors = {} if theme in ("dark", "light") else {"theme": "theme: dark or light"}
        prefs = services_of(request).prefs.get(user_id)
        if not errors:
            prefs = services_of(request).prefs.set(user_id, Prefs(theme=theme, shortcuts=form.get("shortcuts") == "on"))
        return partial("prefs", request, prefs=prefs, errors=errors, saved=not errors)

    @post("/ui/settings/channels", status_code=200)
    async def add_channel(self, request: Request, user_id: str) -> Template:
        form = await request.form()
        values = {k: str(form.get(k) or "").strip() for k in ("kind", "target", "label", "min_severity")}
        errors = validate_channel(values["kind"], values["target"], values["label"], values["min_severity"])
        if errors:
            return partial("alert_channels", request, **channels_context(request, user_id, values=values, errors=errors))
        services_of(request).alerts.add_channel(user_id, values["kind"], values["target"],  # type: ignore[arg-type]
                                                values["label"], values["min_severity"])
        return partial("alert_channels", request, **channels_context(request, user_id, added=True))

    @post("/ui/settings/channels/{channel_id:int}/toggle", status_code=200)
    async def toggle_channel(self, request: Request, user_id: str, channel_id: int) -> Template:
        store = services_of(request).alerts
        channel = store.channel(user_id, channel_id)
        if channel is not None:
            store.update_channel(user_id, channel_id, enabled=0 if channel.enabled else 1)
        return partial("alert_channels", request, **channels_context(request, user_id))

    @post("/ui/settings/channels/{channel_id:int}/test", status_code=200)
    async def test_channel(self, request: Request, user_id: str, channel_id: int) -> Template:
        services = services_of(request)
        channel = services.alerts.channel(user_id, channel_id)
        tested = {}
        if channel is None:
            tested = {"id": channel_id, "ok": False, "detail": "no such channel"}
        elif services.notifier is None:
            tested = {"id": channel_id, "ok": False, "detail": "the notifier is not running yet"}
        else:
            outcome = await services.notifier.test(channel, user_id)
            tested = {"id": channel_id, "ok": outcome.ok, "detail": outcome.detail}
        return partial("alert_channels", request, **channels_context(request, user_id, tested=tested))

    @delete("/ui/settings/channels/{channel_id:int}", status_code=200)
    async def remove_channel(self, request: Request, user_id: str, channel_id: int) -> Template:
        services_of(request).alerts.remove_channel(user_id, channel_id)
        return partial("alert_channels", request, **channels_context(request, user_id))

    @post("/ui/settings/test-alert", status_code=200)
    async def test_alert(self, request: Request, user_id: str) -> Template:
        """A test alert through the real path: KTA_ALERTS → notifier → every channel + the dashboard."""
        bus = services_of(request).bus
        note, error = "", ""
        alert = m.Alert(user_id=user_id, kind="test", severity="warning", title="Test alert",
                        detail="Sent from the settings page: every channel that takes warnings should get it.",
                        key=f"test:{time.time_ns()}", source="gateway", ts=time.time_ns())
        try:
            await bus.js_publish(subjects.alerts(user_id), alert, msg_id=alert.key)
            note = "Sent through kta: it appears in the dashboard's activity and on your channels within seconds."
        except Exception as e:  # noqa: BLE001 - NATS down: said in words
            error = f"could not publish the alert: {e}"
        return partial("alert_recent", request, note=note, error=error, **recent_context(request, user_id))

    @get("/ui/settings/recent")
    async def recent(self, request: Request, user_id: str) -> Template:
        return partial("alert_recent", request, **recent_context(request, user_id))
