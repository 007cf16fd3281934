"""Alerts the execution worker raises for what a trader must not miss: the kill switch moving, a
position left without its stop, a group or exit that needs attention, a broker rejection. One
``Alert`` on ``kta.u.<user>.alerts``; its key makes a repeat a no-op (JetStream message id)."""

from __future__ import annotations

import logging
import time

from shared import subjects
from shared.bus import Bus
from shared.exchange_clock import ExchangeClock
from shared.messages import Alert

log = logging.getLogger("kta.alerts")


async def alert(bus: Bus, user_id: str, kind: str, title: str, detail: str = "", *, severity: str = "warning",
                key: str = "", link: str = "", clock: ExchangeClock | None = None) -> None:
    """``clock``: the worker's exchange clock — the alert carries its time too (a paper market's day and
    time of day are not this machine's; the dashboard shows the exchange's)."""
    exchange_ts = int(clock.now() * 1e9) if clock is not None and clock.known else 0
    msg = Alert(user_id=user_id, kind=kind, severity=severity, title=title, detail=detail, key=key,
                source="execution", ts=time.time_ns(), link=link, exchange_ts=exchange_ts)
    try:
        await bus.js_publish(subjects.alerts(user_id), msg, msg_id=f"{user_id}:{key}" if key else "")
    except Exception as e:  # noqa: BLE001 - an alert that cannot be sent is logged, never fatal
        log.error("alert %s not sent: %r", title, e, extra={"user_id": user_id})
        return
    log.log(logging.CRITICAL if severity == "critical" else logging.WARNING, "alert %s: %s %s", kind, title, detail,
            extra={"user_id": user_id})
