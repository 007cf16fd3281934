"""Where a trader's alerts go and what became of them, in ``gateway.db``.

* ``alert_channels`` — one row per delivery channel of a user: ``email`` (an address) or ``apprise``
  (a notification URL: ``tgram://bot-token/chat-id``, ``json://host/path``, ``discord://…``). The
  address or URL is Fernet-encrypted at rest (a Telegram bot token or a webhook token is a secret); it
  is shown only masked. Each channel has the lowest severity it wants and an on/off switch, and keeps
  its last result ("sent" or the error in words) for the settings page.
* ``alerts`` — every alert the notifier took from KTA_ALERTS, once per (user, ident): ``ident`` is the
  alert's ``key`` when it has one (the same key is delivered once), else the stream sequence.
* ``alert_deliveries`` — (user, ident, channel) → sent / failed: a redelivered alert retries only the
  channels that failed, never one that already got it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import msgspec

from shared.messages import Alert
from shared.secrets import SecretError, Vault
from shared.sqlite import Database

ChannelKind = Literal["email", "apprise"]
SEVERITIES = ("info", "warning", "critical")
RECENT = 200  # alerts kept per user for the activity panel and the settings page


@dataclass(frozen=True)
class Channel:
    id: int
    user_id: str
    kind: ChannelKind
    label: str
    target: str  # the decrypted address or URL: never rendered, never logged
    min_severity: str
    enabled: bool
    last_result: str
    last_at: float

    def wants(self, alert: Alert) -> bool:
        return self.enabled and SEVERITIES.index(alert.severity) >= SEVERITIES.index(self.min_severity)


class AlertStore:
    def __init__(self, db: Database, vault: Vault, clock=time.time) -> None:
        self.db = db
        self.vault = vault
        self.clock = clock
        if "alert_channels" not in db.table_names():
            db["alert_channels"].create({"id": int, "user_id": str, "kind": str, "label": str, "target_enc": str,
                                         "min_severity": str, "enabled": int, "last_result": str,
                                         "last_at": float, "created_at": float}, pk="id")
            db["alert_channels"].create_index(["user_id"])
        if "alerts" not in db.table_names():
            db["alerts"].create({"user_id": str, "ident": str, "kind": str, "severity": str, "title": str,
                                 "detail": str, "source": str, "ts": int, "exchange_ts": int, "received_at": float},
                                pk=("user_id", "ident"))
            db["alerts"].create_index(["user_id", "ts"])
        if "alert_users" not in db.table_names():
            db["alert_users"].create({"user_id": str, "initialised_at": float}, pk="user_id")
        if "alert_deliveries" not in db.table_names():
            db["alert_deliveries"].create({"user_id": str, "ident": str, "channel_id": int, "status": str,
                                           "detail": str, "attempts": int, "at": float},
                                          pk=("user_id", "ident", "channel_id"))

    # ---- channels -----------------------------------------------------------------------------

    def add_channel(self, user_id: str, kind: ChannelKind, target: str, label: str = "",
                    min_severity: str = "warning") -> Channel:
        now = self.clock()
        row = {"user_id": user_id, "kind": kind, "label": label, "target_enc": self.vault.encrypt(target),
               "min_severity": min_severity, "enabled": 1, "last_result": "", "last_at": 0.0, "created_at": now}
        table = self.db["alert_channels"]
        table.insert(row)
        return self.channel(user_id, table.last_pk)  # type: ignore[arg-type]

    def channels(self, user_id: str) -> list[Channel]:
        rows = self.db["alert_channels"].rows_where("user_id = ?", [user_id], order_by="id")
        return [c for c in (self._channel(r) for r in rows) if c is not None]

    def channel(self, user_id: str, channel_id: int) -> Channel | None:
        rows = list(self.db["alert_channels"].rows_where("user_id = ? AND id = ?", [user_id, channel_id]))
        return self._channel(rows[0]) if rows else None

    def update_channel(self, user_id: str, channel_id: int, **fields) -> None:
        if self.channel(user_id, channel_id) is not None:
            self.db["alert_channels"].update(channel_id, fields)

    def remove_channel(self, user_id: str, channel_id: int) -> bool:
        if self.channel(user_id, channel_id) is None:
            return False
        self.db["alert_channels"].delete(channel_id)
        return True

    def initialise(self, user_id: str, email: str) -> None:
        """Once per user: their first channel is their login address, every severity (the end-of-day
        report too). Removing it later sticks: it is not added again."""
        if list(self.db["alert_users"].rows_where("user_id = ?", [user_id])):
            return
        self.db["alert_users"].insert({"user_id": user_id, "initialised_at": self.clock()}, ignore=True)
        self.add_channel(user_id, "email", email, "login email", min_severity="info")

    def record_result(self, channel: Channel, result: str) -> None:
        self.db["alert_channels"].update(channel.id, {"last_result": result, "last_at": self.clock()})

    def _channel(self, row: dict) -> Channel | None:
        try:
            target = self.vault.decrypt(row["target_enc"])
        except SecretError:  # another deployment's key: unusable, shown as such
            target = ""
        return Channel(row["id"], row["user_id"], row["kind"], row["label"], target, row["min_severity"],
                       bool(row["enabled"]) and bool(target), row["last_result"], row["last_at"])

    # ---- alerts and deliveries ----------------------------------------------------------------

    def record_alert(self, alert: Alert, ident: str) -> bool:
        """Keep the alert (once per ident); False when it was already recorded."""
        table = self.db["alerts"]
        if list(table.rows_where("user_id = ? AND ident = ?", [alert.user_id, ident], limit=1)):
            return False
        table.insert({"user_id": alert.user_id, "ident": ident, "kind": alert.kind, "severity": alert.severity,
                      "title": alert.title, "detail": alert.detail, "source": alert.source, "link": alert.link,
                      "ts": alert.ts or time.time_ns(), "exchange_ts": alert.exchange_ts, "received_at": self.clock()},
                     alter=True)
        self.db.execute("DELETE FROM alerts WHERE user_id = ? AND ident NOT IN "
                        "(SELECT ident FROM alerts WHERE user_id = ? ORDER BY ts DESC LIMIT ?)",
                        [alert.user_id, alert.user_id, RECENT])
        return True

    def recent(self, user_id: str, limit: int = 20) -> list[dict]:
        cursor = self.db.execute("SELECT * FROM alerts WHERE user_id = ? ORDER BY ts DESC LIMIT ?", [user_id, limit])
        columns = [d[0] for d in cursor.description]  # one statement (every dashboard asks): query() adds a savepoint
        return [dict(zip(columns, row)) for row in cursor]

    def delivered(self, user_id: str, ident: str, channel_id: int) -> bool:
        rows = list(self.db["alert_deliveries"].rows_where(
            "user_id = ? AND ident = ? AND channel_id = ? AND status = 'sent'", [user_id, ident, channel_id]))
        return bool(rows)

    def record_delivery(self, user_id: str, ident: str, channel_id: int, ok: bool, detail: str) -> None:
        key = (user_id, ident, channel_id)
        table = self.db["alert_deliveries"]
        old = list(table.rows_where("user_id = ? AND ident = ? AND channel_id = ?", list(key)))
        attempts = (old[0]["attempts"] if old else 0) + 1
        table.upsert({"user_id": user_id, "ident": ident, "channel_id": channel_id,
                      "status": "sent" if ok else "failed", "detail": detail, "attempts": attempts,
                      "at": self.clock()}, pk=("user_id", "ident", "channel_id"))


def alert_of(payload: dict) -> Alert:
    """An Alert from the plain dict the SSE layer carries."""
    return msgspec.convert(payload, Alert)
