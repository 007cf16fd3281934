"""HTML fragments for the dashboard's SSE events, rendered from the same Jinja partials the full page
uses (autoescaped: a symbol or strategy name is text, never markup).

``render(event_name, payload, user_id)`` takes the msgspec Struct that arrived on the user's NATS
subject and returns one line of HTML; the SSE layer frames it. Event names and what they swap:

======== ===================================== =============================================
event    payload                               fragment
======== ===================================== =============================================
ticks    ``Tick`` or a list of them (coalesced) one ``<tr id="tick-<token>">`` per token, merged
signals  ``Signal`` / ``SignalGroup``          one ``<tr id="sig-<id>">``, prepended
orders   ``OrderEvent``                        one ``<tr id="order-<tag>">``, replaced in place
positions ``PositionSnapshot``                 the positions table (feeds the P&L curve)
risk     ``RiskState``                         the kill switch and limits figures
status   ``WorkerStatus`` / ``BrokerEvent``    one ``<li>`` for the activity log
======== ===================================== =============================================
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from gateway.templating import environment
from shared import messages as m

EVENTS = ("ticks", "signals", "orders", "positions", "risk", "status")

# token -> display name (tradingsymbol); the pages install the gateway's instrument cache here.
_names: Callable[[int], str | None] = lambda token: None  # noqa: E731


def use_names(lookup: Callable[[int], str | None]) -> None:
    """Where tick rows get their symbol names from (the instrument cache of the trading facade)."""
    global _names
    _names = lookup


def label_of(token: int) -> str:
    return _names(token) or str(token)


def _one_line(html: str) -> str:
    return " ".join(line.strip() for line in html.splitlines() if line.strip())


def _partial(name: str, **context: Any) -> str:
    return environment().get_template(f"partials/{name}.html").render(**context)


def _tick_rows(ticks: Iterable[m.Tick]) -> str:
    return "".join(_partial("tick_row", t=t, label=label_of(t.instrument_token)) for t in ticks)


def broker_event_text(ev: m.BrokerEvent) -> str:
    if ev.kind == "connected":
        text = "Broker feed connected"
    elif ev.kind == "reconnected":
        text = f"Broker feed reconnected after a {ev.gap_seconds:.1f} s gap"
    elif ev.kind == "reconnecting":
        text = f"Broker feed lost: reconnecting (attempt {ev.attempt})"
    elif ev.kind == "disconnected":
        text = "Broker feed disconnected"
    elif ev.kind == "token_expired":
        text = "Kite session expired: reconnect Kite to keep trading"
    elif ev.kind == "stopped":
        text = "Broker feed stopped"
    else:
        text = "Broker alert"
    return f"{text}: {ev.detail}" if ev.detail else text


def worker_status_text(st: m.WorkerStatus) -> str:
    text = f"{st.service} worker {st.state}"
    return f"{text}: {st.detail}" if st.detail else text


def render(event_name: str, payload: Any, user_id: str) -> str:
    """The HTML fragment for one SSE event of ``user_id``; ValueError for an unknown event or payload,
    or for a payload that belongs to another user."""
    owner = getattr(payload, "user_id", "")
    if owner and owner != user_id:
        raise ValueError(f"{type(payload).__name__} of {owner} is not for {user_id}")
    if event_name == "ticks":
        ticks = payload if isinstance(payload, list | tuple) else [payload]
        html = _tick_rows(ticks)
    elif event_name == "signals" and isinstance(payload, m.Signal | m.SignalGroup):
        html = _partial("signal_row", s=msgspec.to_builtins(payload))
    elif event_name == "orders" and isinstance(payload, m.OrderEvent):
        html = _partial("order_row", o=msgspec.to_builtins(payload))
    elif event_name == "positions" and isinstance(payload, m.PositionSnapshot):
        html = _partial("positions_table", snap=msgspec.to_builtins(payload))
    elif event_name == "risk" and isinstance(payload, m.RiskState):
        html = _partial("risk_state", rs=msgspec.to_builtins(payload))
    elif event_name == "status" and isinstance(payload, m.BrokerEvent):
        html = _partial("event_line", ts=payload.ts, text=broker_event_text(payload))
    elif event_name == "status" and isinstance(payload, m.WorkerStatus):
        html = _partial("event_line", ts=payload.ts, text=worker_status_text(payload))
    else:
        raise ValueError(f"no fragment for event {event_name!r} with {type(payload).__name__}")
    return _one_line(html)
