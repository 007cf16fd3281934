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
status   ``WorkerStatus`` / ``BrokerEvent``    one ``<li>`` for the activity log; a feed's or a
                                               worker's line carries ``data-key`` and replaces
                                               its previous line (no reconnect noise)
alerts   ``Alert``                             one ``<li>`` for the activity log (severity class)
======== ===================================== =============================================
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from gateway.templating import environment
from shared import messages as m

EVENTS = ("ticks", "signals", "orders", "positions", "risk", "status", "backtest", "alerts")

Names = Callable[[int], "str | None"]  # instrument token -> its display name (tradingsymbol)


def _no_names(token: int) -> None:
    return None


def _one_line(html: str) -> str:
    return " ".join(line.strip() for line in html.splitlines() if line.strip())


def _partial(name: str, **context: Any) -> str:
    return environment().get_template(f"partials/{name}.html").render(**context)


def _plain(payload: Any) -> Any:
    """A message as plain data: the Struct as the bus carries it, or the dict the stream already made."""
    if isinstance(payload, m.Tick):
        return msgspec.structs.asdict(payload)  # array_like: to_builtins would give a list
    if isinstance(payload, msgspec.Struct):
        return msgspec.to_builtins(payload)
    if isinstance(payload, dict):
        return payload
    raise ValueError(f"a fragment needs a message, not {type(payload).__name__}")


def _tick_rows(ticks: Iterable[Any], names: Names) -> str:
    rows = []
    for tick in ticks:
        t = _plain(tick)
        token = int(t["instrument_token"])
        rows.append(_partial("tick_row", t=t, label=names(token) or str(token)))
    return "".join(rows)


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


FEED_TROUBLE = ("disconnected", "reconnecting", "token_expired")


def _status_line(payload: Any) -> str:
    if isinstance(payload, dict):
        data = {k: v for k, v in payload.items() if k != "source"}
        payload = msgspec.convert(data, m.BrokerEvent if "kind" in data else m.WorkerStatus)
    if isinstance(payload, m.BrokerEvent):
        feed = payload.kind in ("connected", "disconnected", "reconnecting", "reconnected", "stopped")
        return _partial("event_line", ts=payload.ts, text=broker_event_text(payload),
                        key="broker-feed" if feed else "", severity="warning" if payload.kind in FEED_TROUBLE else "")
    if isinstance(payload, m.WorkerStatus):
        return _partial("event_line", ts=payload.ts, text=worker_status_text(payload), key=f"worker-{payload.service}",
                        severity="warning" if payload.state == "degraded" else "")
    raise ValueError(f"no status line for {type(payload).__name__}")


def renderer(names: Names) -> Callable[[str, Any, str], str]:
    """``render`` with tick rows named by ``names`` (the gateway's instrument list): one per app."""

    def render_named(event_name: str, payload: Any, user_id: str) -> str:
        return render(event_name, payload, user_id, names)

    return render_named


def render(event_name: str, payload: Any, user_id: str, names: Names = _no_names) -> str:
    """The HTML fragment for one SSE event of ``user_id``. ``payload`` is the message Struct (or the
    plain dict of it; ticks may be a list; ``names`` gives tick rows their symbols). ValueError for an
    unknown event or payload, or for a payload that belongs to another user."""
    items = payload if isinstance(payload, list | tuple) else [payload]
    for item in items:
        owner = item.get("user_id", "") if isinstance(item, dict) else getattr(item, "user_id", "")
        if owner and owner != user_id:
            raise ValueError(f"{event_name} event of {owner} is not for {user_id}")
    if event_name == "ticks":
        html = _tick_rows(items, names)
    elif event_name == "signals":
        html = _partial("signal_row", s=_plain(payload))
    elif event_name == "orders":
        html = _partial("order_row", o=_plain(payload))
    elif event_name == "positions":
        html = _partial("positions_table", snap=_plain(payload))
    elif event_name == "risk":
        html = _partial("risk_state", rs=_plain(payload))
    elif event_name == "status":
        html = _status_line(payload)
    elif event_name == "backtest":
        html = _partial("backtest_progress", b=_plain(payload))
    elif event_name == "alerts":
        html = _partial("alert_line", a=_plain(payload))
    else:
        raise ValueError(f"no fragment for event {event_name!r}; known: {', '.join(EVENTS)}")
    return _one_line(html)
