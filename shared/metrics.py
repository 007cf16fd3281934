"""Prometheus metrics of every kta process (prometheus-client, default registry).

Hot paths only increment counters that already exist (no label lookups per tick): tick counts are
read from the worker's own ``status()`` counters at scrape time, so the tick path pays nothing.
Workers expose ``/metrics`` on ``Settings.metrics_port`` (0 = off); the gateway serves it itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, generate_latest, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger("kta.metrics")

SIGNALS = Counter("kta_signals_total", "Signals decided by the execution worker", ["decision"])
ORDERS = Counter("kta_orders_total", "Order status changes seen from the broker", ["status"])
REJECTS = Counter("kta_rejects_total", "Signals or orders refused: risk codes and broker rejections", ["code"])
RECONCILE_MISMATCHES = Counter("kta_reconcile_mismatches_total",
                               "Orders whose broker state differed from the journal at reconciliation")
KILL_SWITCH = Gauge("kta_kill_switch_state", "Kill switch per user: 0 active, 1 reducing, 2 halted", ["user"])
FEED_AGE = Gauge("kta_feed_last_tick_age_seconds", "Seconds since a live user's feed last ticked", ["user"])
FEED_STALE = Gauge("kta_feed_stale", "1 while a live user's feed is stale (no ticks in market hours)", ["user"])
SSE_CLIENTS = Gauge("kta_sse_clients", "Browser event streams open on this gateway")
NATS_LAG = Gauge("kta_nats_consumer_pending", "Messages in a JetStream consumer not yet delivered",
                 ["stream", "consumer"])
NATS_CONNECTED = Gauge("kta_nats_connected", "1 while this process's NATS connection is up", ["service"])
NATS_ACK_PENDING = Gauge("kta_nats_consumer_ack_pending", "Messages delivered but not yet acknowledged",
                         ["stream", "consumer"])

KILL_SWITCH_LEVELS = {"active": 0, "reducing": 1, "halted": 2}

# counters a worker's status() keeps anyway, published under Prometheus names
STATUS_COUNTERS = {"ticks": "kta_ticks_total", "ticks_published": "kta_ticks_total",
                   "signals": "kta_signals_published_total"}


def signal(decision: str) -> None:
    SIGNALS.labels(decision).inc()


def order_status(status: str) -> None:
    if status:
        ORDERS.labels(status).inc()
        if status == "REJECTED":
            REJECTS.labels("broker_rejected").inc()


def reject(code: str) -> None:
    REJECTS.labels(code or "unknown").inc()


def kill_switch(user_id: str, state: Any) -> None:
    name = str(getattr(state, "value", state)).lower()
    KILL_SWITCH.labels(user_id).set(KILL_SWITCH_LEVELS.get(name, 0))


class StatusCollector(Collector):
    """The ``status()`` numbers of this process's workers at scrape time: their own counters become
    ``kta_*_total`` and every other number a ``kta_worker_status{service,key}`` gauge."""

    def __init__(self) -> None:
        self.sources: dict[str, Callable[[], dict[str, Any]]] = {}

    def collect(self):
        gauges = GaugeMetricFamily("kta_worker_status", "Numbers a worker reports in its heartbeat",
                                   labels=["service", "key"])
        counters: dict[str, CounterMetricFamily] = {}
        for service, status in list(self.sources.items()):
            try:
                info = status()
            except Exception:  # noqa: BLE001 - a scrape must never break the worker
                continue
            for key, value in info.items():
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    continue
                name = STATUS_COUNTERS.get(key)
                if name is None:
                    gauges.add_metric([service, key], float(value))
                    continue
                if name not in counters:
                    counters[name] = CounterMetricFamily(name[: -len("_total")], "counted by this process",
                                                         labels=["service"])
                counters[name].add_metric([service], float(value))
        yield from counters.values()
        yield gauges


_status = StatusCollector()
REGISTRY.register(_status)


def track(service: str, status: Callable[[], dict[str, Any]]) -> None:
    """Export ``status()`` of a worker of this process (the latest one per service name)."""
    _status.sources[service] = status


def untrack(service: str) -> None:
    _status.sources.pop(service, None)


def serve(port: int, host: str = "0.0.0.0") -> Any:
    """The worker's ``/metrics`` endpoint on its own port (Prometheus scrapes each instance)."""
    server, _thread = start_http_server(port, addr=host)
    log.info("metrics on :%d/metrics", port)
    return server


def render() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


async def poll_lag(bus, every: float = 5.0) -> None:
    """Keep the lag gauges of the JetStream consumers this process pulls from up to date."""
    seen: set[tuple[str, str]] = set()
    while True:
        current = set()
        for durable, stream in list(bus.consumers.items()):
            try:
                info = await bus.js.consumer_info(stream, durable, timeout=2.0)
            except Exception:  # noqa: BLE001 - a leader election or a released partition
                continue
            current.add((stream, durable))
            NATS_LAG.labels(stream, durable).set(info.num_pending or 0)
            NATS_ACK_PENDING.labels(stream, durable).set(info.num_ack_pending or 0)
        for stream, durable in seen - current:
            with contextlib.suppress(KeyError):
                NATS_LAG.remove(stream, durable)
                NATS_ACK_PENDING.remove(stream, durable)
        seen = current
        await asyncio.sleep(every)
