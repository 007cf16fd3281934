"""One process of the shared-budget test: on the "go" message, ``n`` concurrent reads of one api_key
through a KiteClient whose limiter is the NATS-KV budget (``shared``) or its own (``local``); prints
each request's send time and status as JSON."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

import httpx

from shared.bus import Bus
from shared.kite.budget import SharedBudget
from shared.kite.client import KiteClient
from shared.kite.ratelimit import RateLimiter


class Timed(httpx.AsyncHTTPTransport):
    def __init__(self) -> None:
        super().__init__(retries=0)
        self.sent: list[tuple[float, int]] = []

    async def handle_async_request(self, request):
        at = time.time()
        response = await super().handle_async_request(request)
        self.sent.append((at, response.status_code, request.url.path))
        return response


async def main(nats_url: str, root: str, api_key: str, token: str, n: int, mode: str, go: str) -> None:
    bus = await Bus.connect(nats_url, "budget-test", creds=os.environ.get("KTA_NATS_CREDS", ""))
    limiter = SharedBudget(bus, api_key) if mode == "shared" else RateLimiter()
    wire = Timed()
    started = asyncio.Event()
    async def on_go(msg) -> None:
        started.set()

    sub = await bus.nc.subscribe(go, cb=on_go)
    await bus.sync()  # the server has the subscription before the test is told "ready"
    print("ready", flush=True)
    await asyncio.wait_for(started.wait(), 60)
    async with KiteClient(api_key, token, root=root, transport=wire, rate_limiter=limiter) as kite:
        await asyncio.gather(*(kite.margins("equity") for _ in range(n)))
    await sub.unsubscribe()
    await bus.close()
    print(json.dumps({"sent": wire.sent, "fallbacks": getattr(limiter, "fallbacks", 0)}), flush=True)


if __name__ == "__main__":
    a = sys.argv[1:]
    asyncio.run(main(a[0], a[1], a[2], a[3], int(a[4]), a[5], a[6]))
