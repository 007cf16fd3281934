"""Operations endpoints for load balancers, orchestrators and Prometheus — public (no session):

* ``GET /healthz`` — the process is up and serving (liveness).
* ``GET /readyz`` — NATS is connected and every worker kind answers its health subject
  (``kta.svc.<service>.health``); 503 naming what is missing otherwise (readiness).
* ``GET /metrics`` — Prometheus text: this gateway's metrics (SSE clients, process figures).

They reveal no user data: counts and service names only.
"""

from __future__ import annotations

import asyncio

from litestar import Controller, Request, Response, get

from shared import metrics, subjects

WORKERS = ("ticker", "strategy", "execution")
PROBE_TIMEOUT = 1.0
PUBLIC = {"public": True}  # gateway.guards.requires_login lets these through without a session


async def _answers(bus, service: str) -> bool:
    try:
        await bus.nc.request(subjects.service_health(service), b"", timeout=PROBE_TIMEOUT)
        return True
    except Exception:  # noqa: BLE001 - no responders, timeout, reconnecting: not ready
        return False


class OpsController(Controller):
    path = ""
    include_in_schema = False

    @get("/healthz", opt=PUBLIC, cache=False)
    async def healthz(self) -> dict:
        return {"status": "ok"}

    @get("/readyz", opt=PUBLIC, cache=False)
    async def readyz(self, request: Request) -> Response:
        bus = request.app.state.services.bus
        nats_ok = bus is not None and bus.nc.is_connected
        checks: dict[str, bool] = {"nats": nats_ok}
        if nats_ok:
            answers = await asyncio.gather(*(_answers(bus, svc) for svc in WORKERS))
            checks.update(zip(WORKERS, answers))
        else:
            checks.update({svc: False for svc in WORKERS})
        ready = all(checks.values())
        body = {"ready": ready, "checks": checks,
                "missing": [name for name, ok in checks.items() if not ok]}
        return Response(body, status_code=200 if ready else 503)

    @get("/metrics", opt=PUBLIC, cache=False)
    async def prometheus(self, request: Request) -> Response:
        streams = request.app.state.services.streams
        clients = sum(len(feed.clients) for feed in streams.feeds.values()) if streams is not None else 0
        metrics.SSE_CLIENTS.set(clients)
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)
