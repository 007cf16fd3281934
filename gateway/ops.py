"""Operations endpoints for load balancers, orchestrators and Prometheus — public (no session):

* ``GET /healthz`` — the process is up and serving (liveness).
* ``GET /readyz`` — NATS is connected, every worker kind answers its health subject
  (``kta.svc.<service>.health``) and no live user's feed is stale (``stale_feeds``, a count);
  503 naming what is missing otherwise (readiness).
* ``GET /metrics`` — Prometheus text: this gateway's metrics (SSE clients, process figures).

They reveal no user data: counts and service names only.
"""

from __future__ import annotations

import asyncio

from litestar import Controller, Request, Response, get

from shared import messages as m
from shared import metrics, subjects

WORKERS = ("ticker", "strategy", "execution")
PROBE_TIMEOUT = 1.0
PUBLIC = {"public": True}  # gateway.guards.requires_login lets these through without a session


async def _answers(bus, service: str) -> dict | None:
    """The service's health answer (its status figures), or None when it does not answer."""
    try:
        reply = m.reply_decoder.decode((await bus.nc.request(subjects.service_health(service), b"",
                                                             timeout=PROBE_TIMEOUT)).data)
        return reply.data if isinstance(reply, m.Ok) and isinstance(reply.data, dict) else {}
    except Exception:  # noqa: BLE001 - no responders, timeout, reconnecting: not ready
        return None


class OpsController(Controller):
    path = ""
    include_in_schema = False

    @get("/healthz", opt=PUBLIC, cache=False)
    async def healthz(self) -> dict:
        return {"status": "ok"}

    @get("/readyz", opt=PUBLIC, cache=False)
    async def readyz(self, request: Request, feed: bool = True) -> Response:
        """``?feed=false`` leaves the feed out: what an orchestrator routing traffic asks (the
        dashboard must stay reachable to show a stale feed)."""
        bus = request.app.state.services.bus
        nats_ok = bus is not None and bus.nc.is_connected
        checks: dict[str, bool] = {"nats": nats_ok}
        answers = await asyncio.gather(*(_answers(bus, svc) for svc in WORKERS)) if nats_ok else [None] * 3
        checks.update({svc: answer is not None for svc, answer in zip(WORKERS, answers)})
        stale = int((answers[WORKERS.index("ticker")] or {}).get("stale_users", 0))
        if feed:
            checks["feed"] = stale == 0  # a live user's feed silent in market hours is not "ready"
        ready = all(checks.values())
        body = {"ready": ready, "checks": checks, "stale_feeds": stale,
                "missing": [name for name, ok in checks.items() if not ok]}
        return Response(body, status_code=200 if ready else 503)

    @get("/metrics", opt=PUBLIC, cache=False)
    async def prometheus(self, request: Request) -> Response:
        streams = request.app.state.services.streams
        clients = sum(len(feed.clients) for feed in streams.feeds.values()) if streams is not None else 0
        metrics.SSE_CLIENTS.set(clients)
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)
