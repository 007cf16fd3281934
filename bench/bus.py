"""Ticks through the real nats-server (with kta's authentication, as ``kta up`` runs it): a publisher here
connected as the ticker, a subscriber in another process connected as the strategy worker.

Ticks are realistic full-mode ticks (with depth, ``bench/feed.py``) over 50 instruments.
* kta: each tick msgspec-encoded once and a frame's 100 ticks published in one write
  (``Bus.publish_many``, as the ticker does), decoded by ``Bus.subscribe`` into a ``Tick``.
* fair baseline, same server, same processes, measured in the same run: the original design's way —
  each tick as a JSON dict (the official client's field names) with one ``publish`` per tick on the
  same subjects, ``json.loads`` on the other side.
Prints sustained ticks/s (burst: everything published as fast as it goes, all received), the CPU
time per tick of publisher, nats-server and subscriber (process CPU time: the machine is shared and
CPU time is what load does not stretch), p50/p99 publish→receive latency at a paced 10,000/s, the
ratios against the baseline and against the original design's 100 ticks/s, and the machine's load.
Target: >= 50,000 ticks/s on the 2-core machine. Usage: python bench/bus.py [ticks]
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgspec  # noqa: E402

from bench.feed import Instrument, token  # noqa: E402
from bench.stack import Stack, cpu_seconds, machine_load, percentile  # noqa: E402
from shared import messages as m  # noqa: E402
from shared import subjects  # noqa: E402
from shared.bus import Bus  # noqa: E402
from shared.messages import Tick  # noqa: E402

DESIGN = 100.0  # ticks/s, the original design's figure
TARGET = 50_000
N_TOKENS, FRAME = 50, 100


def subscriber(url: str, creds: str, mode: str, expected: int, ready, result) -> None:
    async def run() -> None:
        bus = await Bus.connect(url, "strategy", creds=creds)
        stamps: list[int] = []
        done = asyncio.Event()

        def seen(received_at: int) -> None:
            stamps.append(received_at)
            if len(stamps) >= expected:
                done.set()

        arrivals: list[int] = []
        if mode == "kta":
            async def handler(tick: Tick, msg) -> None:
                arrivals.append(time.time_ns())
                seen(tick.received_at)
            await bus.subscribe(subjects.ticks(subjects.ANY), Tick, handler, pending_msgs_limit=4_000_000)
        else:
            async def raw(msg) -> None:
                arrivals.append(time.time_ns())
                seen(json.loads(msg.data)["received_at"])
            await bus.nc.subscribe(subjects.ticks(subjects.ANY), cb=raw, pending_msgs_limit=4_000_000,
                                   pending_bytes_limit=2**31)
        await bus.nc.flush()
        cpu0 = time.process_time()
        ready.set()
        try:
            await asyncio.wait_for(done.wait(), 300)
        except asyncio.TimeoutError:
            pass
        cpu = time.process_time() - cpu0
        lat = sorted(a - s for a, s in zip(arrivals, stamps))
        result.put((len(stamps), arrivals[0] if arrivals else 0, arrivals[-1] if arrivals else 0, lat, cpu))
        await bus.close()

    asyncio.run(run())


def make_ticks(n: int) -> list[Tick]:
    rng = random.Random(7)
    insts = [Instrument(token(i), random.Random(rng.random())) for i in range(N_TOKENS)]
    out = []
    for i in range(n):
        inst = insts[i % N_TOKENS]
        inst.step()
        out.append(inst.tick("full"))
    return out


async def publish(bus: Bus, mode: str, ticks: list[Tick], pace: float | None) -> float:
    """Publishes every tick; the publisher's CPU seconds."""
    nc, encode = bus.nc, m.encode
    subj = {t.instrument_token: subjects.ticks(t.instrument_token).encode() for t in ticks[:N_TOKENS]}
    start, cpu0 = time.perf_counter(), time.process_time()
    for i in range(0, len(ticks), FRAME):
        frame = ticks[i:i + FRAME]
        now = time.time_ns()
        if mode == "kta":
            batch = []
            for t in frame:
                t.received_at = now
                batch.append((subj[t.instrument_token], encode(t)))
            await bus.publish_many(batch)
        else:
            for t in frame:
                d = msgspec.structs.asdict(t)
                d["received_at"] = now
                await nc.publish(subjects.ticks(t.instrument_token), json.dumps(d, default=str).encode())
        if pace:
            ahead = start + (i + FRAME) / pace - time.perf_counter()
            if ahead > 0:
                await asyncio.sleep(ahead)
    await nc.flush()
    return time.process_time() - cpu0


async def run(stack: Stack, bus: Bus, mode: str, ticks: list[Tick], pace: float | None) -> dict:
    ctx = mp.get_context("spawn")
    ready, result = ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=subscriber, args=(stack.nats_url, str(stack.auth.creds_path("strategy")), mode,
                                                len(ticks), ready, result))
    proc.start()
    ready.wait(60)
    nats_cpu0 = cpu_seconds(stack.procs[0].pid)
    pub_cpu = await publish(bus, mode, ticks, pace)
    got, first, last, lat, sub_cpu = await asyncio.get_running_loop().run_in_executor(None, result.get, True, 400)
    nats_cpu = cpu_seconds(stack.procs[0].pid) - nats_cpu0
    proc.join(10)
    n = len(ticks)
    cpu = {"publisher": pub_cpu / n * 1e6, "nats-server": nats_cpu / n * 1e6, "subscriber": sub_cpu / max(1, got) * 1e6}
    return {"got": got, "rate": got / ((last - first) / 1e9) if last > first else 0.0, "lat": lat, "cpu": cpu}


async def main(n: int) -> None:
    stack = Stack("kta-bench-bus-")
    try:
        bus = await Bus.connect(stack.nats_url, "ticker", creds=str(stack.auth.creds_path("ticker")))
        ticks = make_ticks(n)
        print(f"{n:,} full ticks (with depth) over {N_TOKENS} instruments through nats-server with kta's "
              f"authentication; {machine_load()}", flush=True)
        results = {}
        for mode, label in (("kta", "kta (msgspec, a frame per write)"),
                            ("baseline", "fair baseline (JSON dict, a publish per tick)")):
            r = results[mode] = await run(stack, bus, mode, ticks, None)
            cpu = r["cpu"]
            print(f"burst {label}: {r['got']:,}/{n:,} received = {r['rate']:,.0f} ticks/s; CPU µs/tick "
                  + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items())
                  + f" = {sum(cpu.values()):.1f}; {machine_load()}", flush=True)
        paced_n, pace = 40_000, 10_000.0
        for mode in ("kta", "baseline"):
            r = await run(stack, bus, mode, make_ticks(paced_n), pace)
            results[mode]["p50"], results[mode]["p99"] = percentile(r["lat"], 0.5) / 1e3, percentile(r["lat"], 0.99) / 1e3
            print(f"paced {mode}: {r['got']:,}/{paced_n:,} at {pace:,.0f}/s, latency p50 {results[mode]['p50']:,.0f} µs, "
                  f"p99 {results[mode]['p99']:,.0f} µs; {machine_load()}", flush=True)
        k, b = results["kta"], results["baseline"]
        k_cpu, b_cpu = sum(k["cpu"].values()), sum(b["cpu"].values())
        print(f"figure: {k['rate']:,.0f} full ticks/s through NATS (target >= {TARGET:,}) = {k['rate'] / b['rate']:.1f}x "
              f"the fair baseline's {b['rate']:,.0f}/s, {k['rate'] / DESIGN:,.0f}x the original design's {DESIGN:.0f}/s; "
              f"CPU per tick (all three processes) {k_cpu:.1f} vs {b_cpu:.1f} µs = {b_cpu / k_cpu:.1f}x less "
              f"(= {2e6 / k_cpu:,.0f} ticks/s on 2 cores by CPU time); latency at 10,000/s p50 {k['p50']:,.0f} µs, "
              f"p99 {k['p99']:,.0f} µs (baseline {b['p50']:,.0f} / {b['p99']:,.0f} µs); {machine_load()}", flush=True)
        await bus.close()
    finally:
        stack.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000))
