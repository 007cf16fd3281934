"""The notifier: every ``Alert`` on KTA_ALERTS reaches the trader's channels — email (SMTP) and anything
apprise speaks (Telegram, Discord, Slack, ntfy, generic JSON/form webhooks, ...).

It runs inside the gateway process, as one background task: the channels and the key that decrypts
their URLs live in the gateway's database, and the gateway already owns SMTP. The durable pull
consumer ``notifier-<key fingerprint>`` makes it survive restarts (it resumes from the ack floor) and
lets gateway copies of one deployment (one ``KTA_SECRET_KEY``) share the work: each alert goes to one
copy. A deployment's first start takes alerts from then on, not the stream's history. Delivery is at least once per channel and
never twice to a channel that got it: each (alert, channel) result is recorded; a redelivered alert
retries only the failed channels, up to ``ATTEMPTS`` deliveries, then the failure stays on the
settings page. Without a mail server (no ``KTA_SMTP_HOST``) email is off, not failing: said once at
start, email channels skipped (their result says why), never retried. One alert is handled at a time, each delivery with a timeout, so a slow mail server
delays alerts but never a web request.

The end-of-day report (``kind="eod_report"``, ``key="eod:<day>"``) is rendered here from the
journal's summary of that day, so the email carries the figures the dashboard's report shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
from dataclasses import dataclass
from typing import Any

import apprise
from nats.js.api import DeliverPolicy

from gateway import mailer
from gateway.alert_store import SEVERITIES, AlertStore, Channel
from gateway.templating import environment
from gateway.users import UserError, get_user, normalise_email
from shared import messages as m
from shared import subjects
from shared.bus import Bus
from shared.config import Settings
from shared.secrets import load_key

log = logging.getLogger("kta.gateway.notifier")
logging.getLogger("apprise").setLevel(logging.CRITICAL)  # its messages can carry a secret URL
ATTEMPTS = 3  # deliveries of one alert before a failing channel is left failed
EMAIL_OFF = "off: no mail server configured (KTA_SMTP_HOST)"  # an email channel's result without SMTP
DELIVERY_TIMEOUT = 20.0
EOD_KEY = re.compile(r"^eod:(\d{4}-\d{2}-\d{2})$")


@dataclass(frozen=True)
class Outcome:
    ok: bool
    detail: str  # "sent" or the error in words, scrubbed of the channel's secrets


class Notifier:
    def __init__(self, bus: Bus, settings: Settings, store: AlertStore, trading: Any) -> None:
        self.bus = bus
        self.settings = settings
        self.store = store
        self.trading = trading  # gateway.trading.Trading: the day's summary for the EOD email
        self.stop = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.handled = 0
        self.durable = ""  # the consumer's name (one per deployment key), set at start

    async def start(self) -> "Notifier":
        ready = asyncio.Event()
        key = load_key(self.settings.secret_key, self.settings.data_dir)
        self.durable = durable = "notifier-" + hashlib.sha256(key).hexdigest()[:12]
        self.task = await self.bus.consume(subjects.STREAM_ALERTS, durable, f"{subjects.PREFIX}.u.*.alerts",
                                           m.Alert, self.on_alert, batch=16, ack_wait=60.0,
                                           max_deliver=ATTEMPTS + 1, retry_delay=15.0, ready=ready, stop=self.stop,
                                           deliver_policy=DeliverPolicy.NEW)
        await ready.wait()
        if not self.settings.smtp_host:  # said once here, not once per alert and retry
            log.info("email alerts are off: no mail server configured (KTA_SMTP_HOST); other channels deliver")
        return self

    async def close(self) -> None:
        self.stop.set()
        if self.task is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self.task, 5)

    # ---- one alert ----------------------------------------------------------------------------

    async def on_alert(self, alert: m.Alert, msg) -> None:
        meta = msg.metadata
        ident = alert.key or f"seq:{meta.sequence.stream if meta else 0}"
        delivered = meta.num_delivered if meta else 1
        self.store.record_alert(alert, ident)
        user = get_user(self.settings, alert.user_id)
        if user is not None:
            self.store.initialise(alert.user_id, user.email)
        failed = []
        for channel in self.store.channels(alert.user_id):
            if not channel.wants(alert) or self.store.delivered(alert.user_id, ident, channel.id):
                continue
            if channel.kind == "email" and not self.settings.smtp_host:  # email is off, not failing: no retry
                if channel.last_result != EMAIL_OFF:
                    self.store.record_result(channel, EMAIL_OFF)  # the settings page says why nothing came
                continue
            outcome = await self.deliver(channel, alert)
            self.store.record_delivery(alert.user_id, ident, channel.id, outcome.ok, outcome.detail)
            self.store.record_result(channel, outcome.detail)
            if not outcome.ok:
                failed.append(channel.label or channel.kind)
        self.handled += 1
        if failed and delivered < ATTEMPTS:  # the consumer naks it: tried again later, failed channels only
            raise RuntimeError(f"alert {ident} not delivered to {', '.join(failed)}")

    async def deliver(self, channel: Channel, alert: m.Alert) -> Outcome:
        subject, text, html = await self.render(alert)
        try:
            if channel.kind == "email":
                msg = mailer.message(self.settings, channel.target, subject, text, html)
                await asyncio.wait_for(mailer.send(self.settings, msg, "alert email"), DELIVERY_TIMEOUT)
                return Outcome(True, "sent")
            return await asyncio.wait_for(send_apprise(channel.target, subject, text, alert.severity),
                                          DELIVERY_TIMEOUT)
        except mailer.MailError as e:
            return Outcome(False, str(e))
        except asyncio.TimeoutError:
            return Outcome(False, f"no answer within {DELIVERY_TIMEOUT:g} s")
        except Exception as e:  # noqa: BLE001 - a channel's failure is recorded, never raised past here
            return Outcome(False, scrub(f"{type(e).__name__}: {e}", channel.target))

    async def test(self, channel: Channel, user_id: str) -> Outcome:
        """The settings page's "send test": one delivery to one channel, answered at once."""
        alert = m.Alert(user_id=user_id, kind="test", severity="info", title="Test alert from kta",
                        detail="If you can read this, kta's alerts reach you on this channel.", source="gateway")
        outcome = await self.deliver(channel, alert)
        self.store.record_result(channel, outcome.detail)
        return outcome

    # ---- words ----------------------------------------------------------------------------------

    async def render(self, alert: m.Alert) -> tuple[str, str, str]:
        """(subject, plain text, html) of an alert; the EOD report with the day's journal figures."""
        context: dict[str, Any] = {"alert": alert, "url": self.settings.gateway_url, "journal": None}
        day = EOD_KEY.match(alert.key or "")
        if alert.kind == "eod_report" and day:
            context["day"] = day.group(1)
            try:  # the day's report is worth a wait (a busy worker); a worker gone leaves the alert's own words
                context["journal"] = await self.trading.journal_summary(alert.user_id, day.group(1), timeout=30.0)
            except Exception as e:  # noqa: BLE001
                log.warning("end-of-day report for %s sent without the journal's figures: %s", alert.user_id, e)
        env = environment()
        name = "eod_report" if alert.kind == "eod_report" else "alert"
        text = env.get_template(f"email/{name}.txt").render(**context)
        html = env.get_template(f"email/{name}.html").render(**context)
        prefix = {"critical": "‼ ", "warning": "⚠ "}.get(alert.severity, "")
        return f"{prefix}kta: {alert.title}", text, html


async def send_apprise(url: str, title: str, body: str, severity: str) -> Outcome:
    notify = apprise.Apprise()
    if not notify.add(url):
        return Outcome(False, "not a notification URL apprise understands")
    kind = {"critical": apprise.NotifyType.FAILURE, "warning": apprise.NotifyType.WARNING}.get(
        severity, apprise.NotifyType.INFO)
    with apprise.LogCapture(level=logging.WARNING) as captured:
        ok = bool(await notify.async_notify(body=body, title=title, notify_type=kind))
    if ok:
        return Outcome(True, "sent")
    reason = " ".join(line.split(" - ", 2)[-1] for line in captured.getvalue().splitlines() if line.strip())
    return Outcome(False, scrub(reason or "the service refused the notification", url))


def scrub(text: str, secret_url: str) -> str:
    """The error without any part of the channel's URL that could be a secret (tokens, paths, users)."""
    for part in re.split(r"[/:@?&=#]+", secret_url):
        if len(part) >= 6 and part not in ("https", "mailto", "127.0.0.1", "localhost"):
            text = text.replace(part, "…")
    return text[:300]


def mask(url: str) -> str:
    """A channel's URL as the settings page shows it: the service and host (apprise's privacy form),
    every path segment elided — a webhook's path or a chat id can be the secret."""
    notify = apprise.Apprise()
    if not notify.add(url):
        return url.split(":", 1)[0] + "://…"
    private = next(iter(notify)).url(privacy=True).split("?", 1)[0]
    scheme, _, rest = private.partition("://")
    host, _, path = rest.partition("/")
    return f"{scheme}://{host}" + ("/…" if path.strip("/") else "")


def validate_channel(kind: str, target: str, label: str, min_severity: str) -> dict[str, str]:
    """Every problem of a new channel, by field, in words (empty when it can be added)."""
    errors: dict[str, str] = {}
    if kind not in ("email", "apprise"):
        errors["kind"] = "kind: email or apprise (a notification URL)"
    elif kind == "email":
        try:
            normalise_email(target)
        except UserError:
            errors["target"] = "target: a valid email address is needed"
    elif not target.strip():
        errors["target"] = "target: a notification URL is needed, e.g. tgram://bot-token/chat-id or json://host/path"
    elif not apprise.Apprise().add(target.strip()):
        errors["target"] = ("target: not a notification URL apprise understands "
                            "(tgram://…, discord://…, slack://…, ntfy://…, json://…, form://…)")
    if min_severity not in SEVERITIES:
        errors["min_severity"] = f"min_severity: one of {', '.join(SEVERITIES)}"
    if len(label) > 60:
        errors["label"] = "label: at most 60 characters"
    return errors
