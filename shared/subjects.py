"""The NATS subject scheme, built in one place. Never format a subject anywhere else.

User ids are validated before they go into a subject: a user id is Kite's, ``^[A-Z0-9]{2,10}$``,
so no dot, wildcard or space can ever reach a subject and cross into another user's data.

Wildcards come from the same builders: ``ANY`` in place of a user, an instrument, a service or a verb
is ``*`` (``signals(ANY)`` = ``kta.u.*.signals``, what a worker consumes for every user). ``ANY`` is
not a string, so nothing read from a request or a message can ever stand for it.
"""

from __future__ import annotations

import re
from typing import Any

PREFIX = "kta"
_USER_RE = re.compile(r"^[A-Z0-9]{2,10}$")
_WORD_RE = re.compile(r"^[a-z0-9][a-z0-9_]{0,31}$")

# JetStream streams: name -> subjects it captures
STREAM_SIGNALS = "KTA_SIGNALS"
STREAM_ORDERS = "KTA_ORDERS"
STREAM_BROKER = "KTA_BROKER"
STREAM_OUTCOMES = "KTA_OUTCOMES"
STREAM_ALERTS = "KTA_ALERTS"
STREAM_DLQ = "KTA_DLQ"
KV_BROKER_SESSIONS = "kta_broker_sessions"
KV_STATE = "kta_state"
KV_RATE_BUDGET = "kta_rate_budget"  # one Kite rate budget per api_key across processes (shared/kite/budget.py)


class SubjectError(ValueError):
    """A value that must not be put into a subject."""


class _Any:
    __slots__ = ()

    def __repr__(self) -> str:
        return "subjects.ANY"


ANY: Any = _Any()  # the wildcard ``*`` for one token of a subject (see the module's docstring)


def user(user_id: str) -> str:
    """Validate a user id for use in a subject; raises SubjectError otherwise."""
    if user_id is ANY:
        return "*"
    if not isinstance(user_id, str) or not _USER_RE.match(user_id):
        raise SubjectError(f"invalid user id {user_id!r}: expected 2-10 of A-Z, 0-9")
    return user_id


def _word(value: str, what: str) -> str:
    if value is ANY:
        return "*"
    if not isinstance(value, str) or not _WORD_RE.match(value):
        raise SubjectError(f"invalid {what} {value!r}")
    return value


def _token(token: int) -> str:
    if token is ANY:
        return "*"
    if not isinstance(token, int) or isinstance(token, bool) or not 0 <= token < 2**32:
        raise SubjectError(f"invalid instrument_token {token!r}")
    return str(token)


def ticks(token: int) -> str:
    return f"{PREFIX}.ticks.{_token(token)}"


ALL_TICKS = f"{PREFIX}.ticks.>"
ALL_BARS = f"{PREFIX}.bars.>"


def user_ticks(user_id: str, token: int) -> str:
    """The ticks of one user's instruments (what the user's read-only NATS key may see)."""
    return _u(user_id, "ticks", _token(token))


def bars(interval: str, token: int) -> str:
    return f"{PREFIX}.bars.{_word(interval, 'interval')}.{_token(token)}"


def _u(user_id: str, *rest: str) -> str:
    return ".".join((PREFIX, "u", user(user_id), *rest))


def cmd(user_id: str, service: str, verb: str) -> str:
    """``kta.u.<user>.cmd.<service>.<verb>`` — request/reply commands."""
    return _u(user_id, "cmd", _word(service, "service"), _word(verb, "verb"))


def cmd_wildcard(service: str) -> str:
    """What a service subscribes to: every user's commands for it."""
    return cmd(ANY, service, ANY)


def commands(user_id: str) -> str:
    """``kta.u.<user>.cmd.>`` — every command to every service on behalf of a user."""
    return _u(user_id, "cmd", ">")


def everything(user_id: str) -> str:
    """``kta.u.<user>.>`` — every subject of a user."""
    return _u(user_id, ">")


def signals(user_id: str) -> str:
    return _u(user_id, "signals")


def orders(user_id: str) -> str:
    return _u(user_id, "orders")


def outcomes(user_id: str) -> str:
    """What became of a strategy's signals (StrategyOutcome): execution worker → strategy worker."""
    return _u(user_id, "outcomes")


def alerts(user_id: str) -> str:
    """Alerts for a trader (Alert): raised by any service, delivered by the gateway's notifier."""
    return _u(user_id, "alerts")


def backtests(user_id: str) -> str:
    """Progress of a user's backtests and sweeps (BacktestProgress): strategy worker → gateway SSE."""
    return _u(user_id, "backtests")


def broker(user_id: str, kind: str) -> str:
    """What the ticker worker relays from the broker for a user (``order_updates``, ``events``)."""
    return _u(user_id, "broker", _word(kind, "broker subject"))


def order_updates(user_id: str) -> str:
    return broker(user_id, "order_updates")


def broker_events(user_id: str) -> str:
    return broker(user_id, "events")


def positions(user_id: str) -> str:
    return _u(user_id, "positions")


def risk(user_id: str) -> str:
    return _u(user_id, "risk")


def status(user_id: str) -> str:
    return _u(user_id, "status")


def service_status(service: str) -> str:
    return f"{PREFIX}.svc.{_word(service, 'service')}.status"


def service_health(service: str) -> str:
    """Request/reply health check of a service (any instance answers)."""
    return f"{PREFIX}.svc.{_word(service, 'service')}.health"


def partitions(service: str) -> str:
    """Copies of one worker announce partitions changing hands here (``m.PartitionHandover``)."""
    return f"{PREFIX}.svc.{_word(service, 'service')}.partitions"


def dlq(service: str) -> str:
    return f"{PREFIX}.dlq.{_word(service, 'service')}"


def is_user_subject(subject: str) -> bool:
    """A ``kta.u.<user>....`` subject (not ticks, bars, services or the dead letters)."""
    return subject.startswith(f"{PREFIX}.u.")


def user_of(subject: str) -> str:
    """The validated user id inside a ``kta.u.<user>....`` subject."""
    parts = subject.split(".")
    if len(parts) < 4 or parts[0] != PREFIX or parts[1] != "u":
        raise SubjectError(f"not a user subject: {subject!r}")
    return user(parts[2])


def verb_of(subject: str) -> str:
    return subject.rsplit(".", 1)[-1]


# stream name -> subjects (a wildcard over every user)
STREAMS: dict[str, list[str]] = {
    STREAM_SIGNALS: [signals(ANY)],
    STREAM_ORDERS: [orders(ANY)],
    STREAM_OUTCOMES: [outcomes(ANY)],
    STREAM_ALERTS: [alerts(ANY)],
    STREAM_BROKER: [order_updates(ANY), broker_events(ANY)],
    STREAM_DLQ: [f"{PREFIX}.dlq.>"],
}
