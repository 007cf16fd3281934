"""Ticks end to end: kite_sim's WebSocket → ticker_worker (its own process) → nats-server → a subscriber.

Three processes besides nats-server: kite_sim (its real app and WebSocket server under uvicorn, with a
bench driver that pushes quote-mode frames to the open connections at a set rate), the ticker worker
(``kta worker ticker``, exactly as deployed) and this script, subscribed to ``kta.ticks.>``.

Every tick carries a sequence number in ``volume_traded`` (frame index) and its send time in
``total_buy_quantity`` (µs, mod 2^32), so loss, duplicates and sim→subscriber latency are measured per
tick. The rate steps up; the figure is the highest rate delivered with no loss while keeping up
(>= 90% of the offered rate, so queues are not growing). Baseline: the original
design's 100 ticks/s. Target: >= 50,000 ticks/s on this 2-core machine.
Usage: python bench/ticks_pipeline.py [tokens] [seconds per step]
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shared import messages as m  # noqa: E402
from shared import natsd, subjects  # noqa: E402
from shared.bus import Bus  # noqa: E402
from shared.config import load, to_env  # noqa: E402
from shared.kite.sessions import put_session, vault_for  # noqa: E402
from shared.supervisor import python_argv  # noqa: E402

BASELINE = 100.0  # ticks/s, the original design's figure
RATES = [25_000, 50_000, 75_000, 100_000, 150_000]
WRAP = 2**32


# ---- the sim process ------------------------------------------------------------------------------

def sim_process(port: int, ctrl) -> None:
    import uvicorn

    from kite_sim.app import build_app
    from kite_sim.main import make_sim
    from shared.kite import codec
    from shared.messages import OHLC, Tick

    sim = make_sim(7, 60.0, True, "http://127.0.0.1:9/cb", rate_limits=False)
    sim.tick_interval = 3600.0  # the driver below is the only source of frames

    async def heartbeat() -> None:
        while True:
            await asyncio.sleep(1.0)
            for c in list(sim.hub.connections):
                c.send(codec.HEARTBEAT)

    def frame(tokens: list[int], seq: int) -> bytes:
        us = time.time_ns() // 1000 % WRAP
        return codec.encode_frame([codec.encode_packet(Tick(
            t, "quote", True, 1500.05, 1, 1500.0, seq, us, 0, OHLC(1490.0, 1510.0, 1485.0, 1495.0)))
            for t in tokens])

    async def burst(rate: float, seconds: float) -> tuple[int, int]:
        conns = [c for c in sim.hub.connections if c.modes]
        tokens = sorted({t for c in conns for t in c.modes})
        n_frames = int(rate * seconds / len(tokens))
        per_second = rate / len(tokens)
        start = time.perf_counter()
        full = 0
        for seq in range(n_frames):
            lag = start + seq / per_second - time.perf_counter()
            if lag > 0:
                await asyncio.sleep(lag)
            for c in conns:
                if c.outbox.full():
                    full += 1
                c.send(frame(sorted(c.modes), seq))
        while any(c.outbox.qsize() for c in conns):
            await asyncio.sleep(0.01)
        return n_frames, full

    async def control() -> None:
        loop = asyncio.get_running_loop()
        while True:
            cmd = await loop.run_in_executor(None, ctrl.recv)
            if cmd[0] == "tokens":
                tradable = [t for t, inst in sorted(sim.market.universe.by_token.items()) if inst.tradable]
                ctrl.send(tradable[: cmd[1]])
            elif cmd[0] == "subscribed":
                ctrl.send(sum(len(c.modes) for c in sim.hub.connections))
            elif cmd[0] == "burst":
                ctrl.send(await burst(cmd[1], cmd[2]))
            elif cmd[0] == "stop":
                return

    async def main() -> None:
        server = uvicorn.Server(uvicorn.Config(build_app(sim), host="127.0.0.1", port=port, log_level="warning",
                                               ws="websockets-sansio", lifespan="on", log_config=None))
        serving = asyncio.create_task(server.serve())
        beat = asyncio.create_task(heartbeat())
        await control()
        beat.cancel()
        server.should_exit = True
        await serving

    asyncio.run(main())


# ---- this process: set up, subscribe, measure ------------------------------------------------------

class Meter:
    def __init__(self, tokens: list[int]) -> None:
        self.tokens = {t: i for i, t in enumerate(tokens)}
        self.reset()

    def reset(self) -> None:
        self.seen: dict[int, bytearray] = {}
        self.count = self.dups = 0
        self.first = self.last = 0.0
        self.lat: list[int] = []

    def __call__(self, msg) -> None:
        tick = m.tick_decoder.decode(msg.data)
        now = time.time_ns()
        if not self.first:
            self.first = now
        self.last = now
        self.count += 1
        seen = self.seen.get(tick.instrument_token)
        if seen is None:
            seen = self.seen[tick.instrument_token] = bytearray()
        seq = tick.volume_traded
        if seq >= len(seen):
            seen.extend(bytes(seq + 1 - len(seen)))
        if seen[seq]:
            self.dups += 1
        seen[seq] = 1
        if self.count % 7 == 0:  # a sample keeps the meter cheap
            self.lat.append((now // 1000 - tick.total_buy_quantity) % WRAP)


async def run(n_tokens: int, seconds: float) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="kta-bench-"))
    nats_port, sim_port = natsd.free_port(), natsd.free_port()
    nats = natsd.start(nats_port, tmp / "js")
    url = f"nats://127.0.0.1:{nats_port}"
    ctx = mp.get_context("spawn")
    ctrl, child = ctx.Pipe()
    sim = ctx.Process(target=sim_process, args=(sim_port, child), daemon=True)
    sim.start()
    natsd.wait_port("127.0.0.1", sim_port, timeout=30)
    settings = load(environ={}, nats_url=url, data_dir=str(tmp / "var"), log_level="WARNING",
                    kite_root=f"http://127.0.0.1:{sim_port}", kite_ws_root=f"ws://127.0.0.1:{sim_port}/ws")
    vault = vault_for(settings)  # creates the key the worker will read
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("KTA_")}, **to_env(settings)}
    worker = subprocess.Popen(python_argv("worker", "ticker"), cwd=ROOT, env=env)
    bus = await Bus.connect(url, "bench")
    try:
        await bus.ensure_streams()
        token = _login(f"http://127.0.0.1:{sim_port}")
        ctrl.send(("tokens", n_tokens))
        tokens = ctrl.recv()
        meter = Meter(tokens)
        await bus.nc.subscribe(subjects.ALL_TICKS, cb=_sync(meter), pending_msgs_limit=4_000_000,
                               pending_bytes_limit=2**30)
        await _until(lambda: _health(bus), "ticker worker health")
        await put_session(bus, vault, "DEMO01", "kta-demo", token)
        await _until(lambda: _subscribe(bus, tokens), "ticker worker connected to the sim")
        await _until(lambda: _subscribed(ctrl, len(tokens)), "tokens subscribed at the sim")

        print(f"pipeline: kite_sim WebSocket -> ticker_worker -> nats-server -> subscriber, "
              f"{len(tokens)} tokens, quote mode, {seconds:g}s per step")
        best = 0.0
        for rate in RATES:
            meter.reset()
            frames, full = await asyncio.get_running_loop().run_in_executor(None, _burst, ctrl, rate, seconds)
            expected = frames * len(tokens)
            await _settle(meter, expected)
            lost = expected - sum(sum(s) for s in meter.seen.values())
            secs = (meter.last - meter.first) / 1e9 or 1e-9
            got_rate = meter.count / secs
            lat = sorted(meter.lat) or [0]
            p50, p99 = lat[len(lat) // 2] / 1e3, lat[int(len(lat) * 0.99)] / 1e3
            print(f"  offered {rate:>8,.0f}/s: received {meter.count:>9,}/{expected:,} in {secs:5.2f}s "
                  f"= {got_rate:>8,.0f} ticks/s, lost {lost:,}, duplicates {meter.dups:,}, "
                  f"latency p50 {p50:7.1f} ms, p99 {p99:7.1f} ms{'  (sim outbox full)' if full else ''}")
            if lost or meter.dups or got_rate < 0.9 * rate:  # losing, or queueing up: not sustained
                break
            best = max(best, got_rate)
        print(f"sustained with no loss: {best:,.0f} ticks/s = {best / BASELINE:,.0f}x the original design's "
              f"{BASELINE:.0f} ticks/s (target >= 50,000 ticks/s)")
    finally:
        ctrl.send(("stop",))
        worker.terminate()
        worker.wait(10)
        await bus.close()
        sim.join(10)
        nats.terminate()
        nats.wait(10)


def _login(root: str, api_key: str = "kta-demo", secret: str = "kta-demo-secret") -> str:
    """The sim's demo user through Kite's login flow (form post, then the checksummed exchange)."""
    import hashlib
    import re

    import httpx

    r = httpx.post(f"{root}/connect/login", data={"api_key": api_key, "user_id": "DEMO01", "password": "demo"})
    request_token = re.search(r"request_token=([^&]+)", r.headers["location"]).group(1)
    checksum = hashlib.sha256(f"{api_key}{request_token}{secret}".encode()).hexdigest()
    r = httpx.post(f"{root}/session/token", data={"api_key": api_key, "request_token": request_token,
                                                  "checksum": checksum}, headers={"X-Kite-Version": "3"})
    return r.json()["data"]["access_token"]


def _sync(meter: Meter):
    async def cb(msg) -> None:
        meter(msg)

    return cb


def _burst(ctrl, rate: float, seconds: float):
    ctrl.send(("burst", rate, seconds))
    return ctrl.recv()


def _subscribed(ctrl, n: int) -> bool:
    ctrl.send(("subscribed",))
    return ctrl.recv() >= n


async def _settle(meter: Meter, expected: int) -> None:
    """Wait until everything arrived, or nothing more arrives for a second."""
    last, idle = -1, time.monotonic()
    while meter.count < expected and time.monotonic() - idle < 1.0:
        await asyncio.sleep(0.05)
        if meter.count != last:
            last, idle = meter.count, time.monotonic()


async def _health(bus: Bus) -> bool:
    try:
        await bus.nc.request(subjects.service_health("ticker"), b"", timeout=0.5)
        return True
    except Exception:  # noqa: BLE001
        return False


async def _subscribe(bus: Bus, tokens: list[int]) -> bool:
    reply = await bus.request(subjects.cmd("DEMO01", "ticker", "subscribe"),
                              m.Subscribe(tokens=tokens, mode=m.TickMode.QUOTE))
    return isinstance(reply, m.Ok) and reply.data.get("connected")


async def _until(check, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def main() -> None:
    n_tokens = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 4.0
    asyncio.run(run(n_tokens, seconds))


if __name__ == "__main__":
    main()
