"""Broker sessions, broker connection events and worker status."""

from __future__ import annotations

from typing import Literal

from msgspec import Struct, field

from shared.messages.vocabulary import UserId


class BrokerSession(Struct, frozen=True, kw_only=True):
    """Value of KV ``kta_broker_sessions`` under the user id; the token is encrypted at rest."""

    user_id: UserId
    api_key: str
    access_token_enc: str  # shared.secrets.encrypt(access_token)
    login_time: str = ""
    expires_at: int = 0  # epoch seconds (next 06:00 IST)
    egress_proxy: str = ""  # per-user static-IP egress (proxy URL) for order endpoints
    egress_local_address: str = ""  # or a local source address


BrokerEventKind = Literal[
    "connected", "disconnected", "reconnecting", "reconnected", "token_expired", "alert", "stopped"
]


class BrokerEvent(Struct, frozen=True, kw_only=True):
    user_id: UserId
    kind: BrokerEventKind
    ts: int
    attempt: int = 0
    gap_start: int = 0  # epoch ns
    gap_end: int = 0
    detail: str = ""

    @property
    def gap_seconds(self) -> float:
        return max(0, self.gap_end - self.gap_start) / 1e9


class WorkerStatus(Struct, frozen=True, kw_only=True):
    """Heartbeat of a process, on ``kta.svc.<service>.status`` and per user on ``kta.u.<user>.status``."""

    service: str
    instance: str
    state: Literal["starting", "ready", "degraded", "stopping"] = "ready"
    ts: int = 0
    user_id: str = ""
    detail: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    exchange_ts: int = 0  # the exchange's clock as this worker hears it (epoch ns; 0 = not heard yet: the gateway's day)


class PartitionHandover(Struct, frozen=True, kw_only=True):
    """Copies of a worker telling each other of partitions changing hands (``shared/partition.py``), on
    ``kta.svc.<service>.partitions``: ``released`` False as the giver is about to stop answering them, True once
    their leases are deleted (a peer claims them at once instead of at its next tick)."""

    service: str
    instance: str
    partitions: list[int]
    released: bool = False


AlertKind = Literal[
    "kill_switch",       # the kill switch moved to REDUCING or HALTED (or was reset)
    "unprotected",       # a position has no working stop at the broker (or a protective order failed)
    "needs_attention",   # a multi-leg group or exit could not complete: the trader must look
    "order_rejected",    # the broker rejected an order
    "external_fill",     # the broker's position changed outside kta (its square-off, expiry, a trade in Kite)
    "token_expired",     # the broker session ended: log in to Kite again
    "authorisation",     # a delivery sell waits for the depository's eDIS/TPIN authorisation (link: where)
    "feed_stale",        # no ticks for too long during market hours
    "feed_restored",
    "eod_report",        # the day's report is ready (detail: the summary)
    "test",              # "send test" from the alert settings
    "info",
]


class Alert(Struct, frozen=True, kw_only=True):
    """Something a trader must not miss, on ``kta.u.<user>.alerts`` (JetStream ``KTA_ALERTS``).
    Any process may raise one; the gateway's notifier delivers it to the user's channels (email,
    Telegram, webhooks) and the dashboard's activity panel shows it. ``key`` de-duplicates: the
    same key is delivered once (e.g. ``unprotected:<tag>``)."""

    user_id: UserId
    kind: AlertKind
    severity: Literal["info", "warning", "critical"] = "warning"
    title: str
    detail: str = ""
    key: str = ""
    source: str = ""  # the service that raised it
    ts: int = 0  # epoch ns
    link: str = ""  # where the trader acts on it (an http(s) URL, e.g. the depository's authorisation page)
    exchange_ts: int = 0  # the same moment on the exchange's clock (epoch ns; 0 = not known): the time a trader reads
