"""Alerts end to end: an Alert published on KTA_ALERTS (as the execution worker raises one) reaches the
trader's email (a local SMTP server), a webhook channel (a local HTTP receiver, through apprise) and
the dashboard's activity stream; a key is delivered once; a failing channel is recorded, in words,
without its secrets; another user's alerts never reach these channels; the end-of-day report email
carries the journal's figures from the execution worker."""

from __future__ import annotations

import time
from contextlib import aclosing

import pytest

from gateway import users
from shared import messages as m
from shared import natsd, subjects
from gateway.notifier import EMAIL_OFF
from tests.alertkit import html_of, smtp_server, text_of, webhook_server
from tests.gateway.conftest import USER_B, login, serve, serve_with_workers
from tests.gateway.test_sse import SSE
from tests.helpers import eventually, stack_settings


def alert(user_id: str, key: str, **kw) -> m.Alert:
    base = dict(kind="kill_switch", severity="critical", title="Kill switch: Halted",
                detail="day P&L -₹5,100.00 passed the daily loss limit ₹5,000.00", source="execution")
    return m.Alert(user_id=user_id, key=key, ts=time.time_ns(), **{**base, **kw})


@pytest.fixture
async def alert_stack(nats_server, data_dir, gw_sim, gateway_port, bus):
    with smtp_server() as (inbox, smtp_port):
        async with webhook_server() as hook:
            settings = stack_settings(nats_server, data_dir, gw_sim, gateway_port=gateway_port, env="dev",
                                      smtp_host="127.0.0.1", smtp_port=smtp_port, smtp_starttls=False,
                                      smtp_from="kta@test.local")
            users.ensure_demo_user(settings)
            users.add_user(settings, **USER_B)
            async with serve_with_workers(settings, bus) as gw:
                yield gw, inbox, hook


async def test_an_alert_reaches_email_webhook_and_dashboard_once(alert_stack, bus):
    gw, inbox, hook = alert_stack
    a, csrf = await login(gw)
    assert "login code" in (await inbox.next_mail())[1]["Subject"]  # SMTP is on: the OTP went by mail too
    h = {"X-CSRF-Token": csrf}
    async with aclosing(a):
        first = (await a.get("/api/alerts/channels")).json()
        assert [(c["kind"], c["target"], c["min_severity"]) for c in first] == [("email", "demo@kta.local", "info")]
        secret_path = "kta/hooksecret9f3a"
        r = await a.post("/api/alerts/channels", headers=h, json={
            "kind": "apprise", "target": f"json://{hook.url}/{secret_path}", "label": "my webhook"})
        assert r.status_code == 201, r.text
        assert "hooksecret9f3a" not in r.text and r.json()["target"].startswith("json://")  # write-only secret
        for body, field in (({"kind": "apprise", "target": "nope://x"}, "target"),
                            ({"kind": "email", "target": "not-an-address"}, "target"),
                            ({"kind": "sms", "target": "x"}, "kind")):
            r = await a.post("/api/alerts/channels", headers=h, json=body)
            assert r.status_code == 400 and field in r.text, r.text
        dead = natsd.free_port()  # nothing listens there: the channel fails, the others do not
        r = await a.post("/api/alerts/channels", headers=h, json={
            "kind": "apprise", "target": f"json://127.0.0.1:{dead}/deadtoken42", "label": "dead",
            "min_severity": "critical"})
        dead_id = r.json()["id"]

        async with SSE(a, "/sse") as stream:
            await bus.js_publish(subjects.alerts("DEMO01"), alert("DEMO01", "ks:1"), msg_id="ks:1")
            rcpts, mail = await inbox.next_mail()
            assert rcpts == ["demo@kta.local"] and "Kill switch: Halted" in mail["Subject"]
            assert "passed the daily loss limit" in text_of(mail) and "alert settings" in html_of(mail)
            path, body = await hook.next_post()
            assert path.strip("/") == secret_path and body["title"].endswith("Kill switch: Halted")
            assert "passed the daily loss limit" in body["message"]
            ev = await stream.next_event(15)
            while ev[1] != "alerts":
                ev = await stream.next_event(15)
            assert "sev-critical" in ev[2] and "Kill switch: Halted" in ev[2] and 'data-key="alert-ks:1"' in ev[2]

        # the same key raised again is not delivered again: the next mail is the next alert's
        await bus.js_publish(subjects.alerts("DEMO01"), alert("DEMO01", "ks:1"), msg_id="ks:1-again")
        await bus.js_publish(subjects.alerts("DEMO02"), alert("DEMO02", "b:1", title="B's alert"), msg_id="b:1")
        await bus.js_publish(subjects.alerts("DEMO01"), alert("DEMO01", "rej:1", kind="order_rejected",
                                                             severity="warning", title="Order rejected"),
                             msg_id="rej:1")
        got = [await inbox.next_mail(), await inbox.next_mail()]
        assert sorted((r[0][0], r[1]["Subject"].split("kta: ")[1]) for r in got) == [
            ("demo2@kta.local", "B's alert"), ("demo@kta.local", "Order rejected")]
        path, body = await hook.next_post()
        assert body["title"].endswith("Order rejected")  # B's alert never reached A's webhook

        channels = {c["id"]: c for c in (await a.get("/api/alerts/channels")).json()}
        assert channels[dead_id]["last_result"] and channels[dead_id]["last_result"] != "sent"
        assert "deadtoken42" not in str(channels)
        recent = (await a.get("/api/alerts")).json()
        assert [x["ident"] for x in recent].count("ks:1") == 1

        # "send test" on one channel: that channel only, answered at once
        hook_id = next(c["id"] for c in channels.values() if c["label"] == "my webhook")
        r = await a.post(f"/api/alerts/channels/{hook_id}/test", headers=h)
        assert r.json() == {"id": hook_id, "ok": True, "detail": "sent"}
        assert (await hook.next_post())[1]["title"].endswith("Test alert from kta")
        r = await a.post(f"/api/alerts/channels/{dead_id}/test", headers=h)
        assert r.json()["ok"] is False and "deadtoken42" not in r.text

        # the end-of-day report: the journal's figures of that day, from the execution worker
        day = time.strftime("%Y-%m-%d")
        await bus.js_publish(subjects.alerts("DEMO01"), alert("DEMO01", f"eod:{day}", kind="eod_report",
                                                             severity="info", title="Day report"),
                             msg_id=f"eod:{day}")
        rcpts, mail = await inbox.next_mail()
        assert "Day report" in mail["Subject"] and f"— {day}" in text_of(mail)
        assert "Closed trades:" in text_of(mail) and 'id="eod-figures"' in html_of(mail)


async def test_the_settings_page_adds_tests_and_removes_channels(alert_stack):
    gw, inbox, hook = alert_stack
    a, csrf = await login(gw)
    assert "login code" in (await inbox.next_mail())[1]["Subject"]
    hx = {"HX-Request": "true", "X-CSRFToken": csrf}
    async with aclosing(a):
        page = (await a.get("/settings")).text
        assert 'id="alert-channels"' in page and "demo@kta.local" in page and 'id="prefs"' in page
        r = await a.post("/ui/settings/channels", headers=hx, data={"kind": "apprise", "target": "tgram://",
                                                                   "label": "x" * 70, "min_severity": "loud"})
        for field in ("target", "label", "min_severity"):  # every bad field named next to itself
            assert f'id="error-{field}"' in r.text, field
        assert 'value="tgram://"' in r.text  # what was typed is kept
        r = await a.post("/ui/settings/channels", headers=hx, data={
            "kind": "apprise", "target": f"json://{hook.url}/page", "label": "page hook", "min_severity": "info"})
        assert 'id="channel-added"' in r.text
        channel_id = int(r.text.split('id="test-channel-')[-1].split('"')[0])
        r = await a.post(f"/ui/settings/channels/{channel_id}/test", headers=hx)
        assert f'id="test-result-{channel_id}">test: sent<' in r.text
        assert (await hook.next_post())[0].strip("/") == "page"
        r = await a.post("/ui/settings/test-alert", headers=hx)  # through KTA_ALERTS, to every channel
        assert 'id="test-alert-note"' in r.text
        rcpts, mail = await inbox.next_mail()
        assert "Test alert" in mail["Subject"]
        assert (await hook.next_post())[1]["title"].endswith("Test alert")
        await eventually(lambda: gw.services.alerts.recent("DEMO01"), 10, "the test alert recorded")
        assert "Test alert" in (await a.get("/ui/settings/recent", headers=hx)).text
        r = await a.delete(f"/ui/settings/channels/{channel_id}", headers=hx)
        assert f'id="channel-{channel_id}"' not in r.text
        r = await a.post("/ui/settings/prefs", headers=hx, data={"theme": "light", "shortcuts": "on"})
        assert 'id="prefs-saved"' in r.text and (await a.get("/api/prefs")).json() == {"theme": "light",
                                                                                       "shortcuts": True}
        assert 'data-theme="light"' in (await a.get("/settings")).text  # remembered for the next page


async def test_without_a_mail_server_email_is_off_and_never_retried(nats_server, data_dir, gw_sim, gateway_port, bus):
    """No SMTP configured: an alert reaches the other channels and is acknowledged at once; the email
    channel is skipped (email is off, not failing: no nak, no redelivery, no error per retry in the log)
    and the settings page says why it got nothing."""
    async with webhook_server() as hook:
        settings = stack_settings(nats_server, data_dir, gw_sim, gateway_port=gateway_port, env="dev")
        assert not settings.smtp_host
        users.ensure_demo_user(settings)
        async with serve(settings) as gw:
            a, csrf = await login(gw)
            async with aclosing(a):
                r = await a.post("/api/alerts/channels", headers={"X-CSRF-Token": csrf}, json={
                    "kind": "apprise", "target": f"json://{hook.url}/off", "label": "hook"})
                assert r.status_code == 201, r.text
                await bus.js_publish(subjects.alerts("DEMO01"), alert("DEMO01", "ks:off"), msg_id="ks:off")
                assert (await hook.next_post())[1]["title"].endswith("Kill switch: Halted")

                notifier = gw.services.notifier

                async def settled() -> bool:  # this gateway's consumer (earlier tests' stay on the stream)
                    info = await bus.js.consumer_info(subjects.STREAM_ALERTS, notifier.durable)
                    return info.num_ack_pending == 0 and notifier.handled == 1
                await eventually(settled, 10, "the alert acknowledged (a failed email would have it nak'ed for a retry)")
                channels = (await a.get("/api/alerts/channels")).json()
                assert [c["last_result"] for c in channels if c["kind"] == "email"] == [EMAIL_OFF]
                assert [c["last_result"] for c in channels if c["kind"] == "apprise"] == ["sent"]
                page = (await a.get("/settings")).text  # said as a setting, not shown red like a failure
                assert f'<span class="muted" data-result>{EMAIL_OFF}</span>' in page
