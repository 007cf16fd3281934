"""Ticks through the gateway's SSE layer: how many ticks a second one user's stream absorbs while the
browser still gets a few coalesced updates a second per token.

The gateway runs as deployed (``gateway.main.build`` under uvicorn) in its own process, with one user
logged in through the real OTP flow and live on ``TOKENS`` instruments; this script publishes ticks
for those tokens on core NATS at stepped rates and reads ``/api/stream``. Per step it prints the
offered rate, the gateway process's CPU share, the tick updates the client got per token per second
(the target is ~4, whatever the offered rate) and CPU µs per tick. The figure is the highest rate
absorbed in full (every tick seen by the gateway) below 90% of one core; baseline: the original design's 100 ticks/s.
Usage: python bench/gateway_sse.py [tokens] [seconds per step]
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from httpx_sse import aconnect_sse  # noqa: E402

from shared import messages as m  # noqa: E402
from shared import natsd, subjects  # noqa: E402
from shared.bus import Bus  # noqa: E402
from shared.config import load  # noqa: E402

BASELINE = 100.0
RATES = [5_000, 10_000, 20_000, 40_000, 80_000, 160_000]
FIRST_TOKEN = 100_000


def serve_gateway(settings, tokens: list[int]) -> None:
    import uvicorn

    from gateway import users
    from gateway.main import build

    users.ensure_demo_user(settings)
    app = build(settings)

    def live(a) -> None:
        a.state.services.trading.live_tokens["DEMO01"] = tokens

    app.on_startup.append(live)
    uvicorn.run(app, host="127.0.0.1", port=settings.gateway_port, log_level="warning")


async def ticks_seen(bus: Bus) -> int:
    reply = m.reply_decoder.decode((await bus.nc.request(subjects.service_health("gateway"), b"", timeout=5)).data)
    return int(reply.data.get("ticks_seen", 0))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def main(n_tokens: int, seconds: float) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="kta-bench-sse-"))
    nats_port, gw_port = natsd.free_port(), natsd.free_port()
    nats = natsd.start(nats_port, tmp / "js")
    settings = load(environ={}, nats_url=f"nats://127.0.0.1:{nats_port}", data_dir=str(tmp / "var"),
                    gateway_port=gw_port, log_level="WARNING", env="dev")
    tokens = list(range(FIRST_TOKEN, FIRST_TOKEN + n_tokens))
    proc = mp.get_context("spawn").Process(target=serve_gateway, args=(settings, tokens), daemon=True)
    proc.start()
    natsd.wait_port("127.0.0.1", gw_port, timeout=30)
    bus = await Bus.connect(settings.nats_url, "bench")
    client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw_port}", timeout=30)
    r = await client.post("/auth/send-otp", json={"zerodha_id": "DEMO01", "email": "demo@kta.local"})
    await client.post("/auth/verify-otp", json={"zerodha_id": "DEMO01", "otp": r.json()["dev_otp"]})
    received = {"ticks": 0}

    async def read() -> None:
        async with aconnect_sse(client, "GET", "/api/stream") as source:
            async for ev in source.aiter_sse():
                if ev.event == "ticks":
                    received["ticks"] += 1

    reader = asyncio.create_task(read())
    best = 0
    print(f"{n_tokens} tokens, {seconds:.0f} s per step")
    print(f"{'offered/s':>10} {'sent/s':>9} {'absorbed %':>11} {'gw cpu %':>9} {'updates/s/token':>16} "
          f"{'cpu us/tick':>12}")
    for rate in RATES:
        payloads = [m.encode(m.Tick(instrument_token=t, mode="quote", tradable=True, last_price=100.0 + i))
                    for i, t in enumerate(tokens)]
        subjects_ = [subjects.ticks(t) for t in tokens]
        batch = max(1, rate // 100)
        seen0 = await ticks_seen(bus)
        cpu0, got0, t0, sent = cpu_seconds(proc.pid), received["ticks"], time.perf_counter(), 0
        while (elapsed := time.perf_counter() - t0) < seconds:
            for _ in range(batch):
                i = sent % n_tokens
                await bus.nc.publish(subjects_[i], payloads[i])
                sent += 1
            await bus.nc.flush()
            ahead = sent / rate - (time.perf_counter() - t0)
            if ahead > 0:
                await asyncio.sleep(ahead)
        sent_rate = sent / (time.perf_counter() - t0)
        await asyncio.sleep(0.5)  # let the last flushes of coalesced ticks reach the client
        elapsed = time.perf_counter() - t0
        cpu = cpu_seconds(proc.pid) - cpu0
        seen = await ticks_seen(bus) - seen0
        share = cpu / elapsed
        updates = (received["ticks"] - got0) / elapsed / n_tokens
        absorbed = seen / sent
        print(f"{rate:>10,} {sent_rate:>9,.0f} {absorbed * 100:>10.1f}% {share * 100:>8.1f}% {updates:>16.2f} "
              f"{cpu / max(seen, 1) * 1e6:>12.2f}")
        if share < 0.9 and updates > 0 and absorbed >= 0.999:
            best = max(best, int(sent_rate))
    print(f"figure: {best:,} ticks/s absorbed by one user's stream below 90% of a core "
          f"({best / BASELINE:,.0f}x the {BASELINE:.0f} ticks/s baseline), ~4 updates/s/token to the browser")
    reader.cancel()
    await client.aclose()
    await bus.close()
    proc.terminate()
    proc.join(10)
    nats.terminate()


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(main(int(args[0]) if args else 50, float(args[1]) if len(args) > 1 else 3.0))
