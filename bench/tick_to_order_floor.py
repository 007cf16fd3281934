"""The floor of tick → order on this machine (issue #18): kta's topology with no kta logic in it.

The same processes and hops as ``bench/tick_to_order.py``'s path, each doing only what it must
(``bench/floor_procs.py``), on one real nats-server with kta's authentication (bench/stack.py's Stack):
a sender (the sim's part: 6 instruments' full-mode ticks, one WebSocket frame every 0.25 s, a minute bar
closing every 8 frames as the sim at speed 30 does) → a ticker (kta's decoder, each tick a msgspec message on
core NATS) → a strategy process (a bar per token; on a bar close 4 signals per symbol, 24 a bar over 8 users,
stored in JetStream with a message id and their acks) → two execution processes (each its half of the users
from a durable pull consumer: a signal row + an order row in one SQLite WAL commit, the POST written on the
user's keep-alive HTTP/1.1 connection to a local HTTP server, the message acked).
Stamps as kta's internal figure: the tick's decode time in the ticker → just before the POST's write
(``time.time_ns()`` across processes). By stage: tick → signal created, signal → stored (the stream's
timestamp), stored → the execution process's handler, handler → handed. The first 2 bars are warm-up.

Variants: ``core`` (signals on core NATS: what the durable signal costs), ``one`` (one execution process).
``FLOOR_RT=1``: every thread of the floor's processes and of its nats-server at real-time priority (``chrt -f 10``;
root or CAP_SYS_NICE): each is on a core as soon as it wakes, whatever else runs — a proxy for a quiet machine on a
shared one (the floor uses ~1 ms of CPU a signal, ~1.5 % of a core, so the others lose little).
Usage: python bench/tick_to_order_floor.py [signals] [rounds] [kta orders]
  rounds alternate the floor with kta's ``bench/tick_to_order.py <kta orders> 30 0`` (0 kta orders: floor only);
  the variants run once, after the rounds, with half the signals.
"""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import msgspec  # noqa: E402
import nats  # noqa: E402
from nats.js.api import AckPolicy, ConsumerConfig, StorageType, StreamConfig  # noqa: E402

from bench.floor_procs import STREAM, Stamp  # noqa: E402
from bench.stack import Stack, cpu_seconds, machine_load, percentile  # noqa: E402
from shared import natsd  # noqa: E402

TARGET_P50, TARGET_P99 = 1.5, 5.0
RT = os.environ.get("FLOOR_RT") == "1"  # the floor's processes at SCHED_FIFO: a proxy for a quiet machine
INTERVAL, FRAMES, WARMUP_BARS = 0.25, 8, 2
STAGES = ("tick → signal", "signal → stored", "stored → handler", "handler → handed")


def summary(values: list[float]) -> tuple[float, float, float]:
    s = sorted(values)
    return percentile(s, 0.5), percentile(s, 0.9), percentile(s, 0.99)


def fmt(values: list[float]) -> str:
    return "p50 {:.2f} / p90 {:.2f} / p99 {:.2f} ms".format(*summary(values))


async def run_floor(want: int, core: bool = False, execs: int = 2) -> dict:
    """One floor run; its figure, stages (ms lists) and CPU ms per signal by process."""
    stack = Stack("kta-bench-floor-")
    procs: dict[str, subprocess.Popen] = {}
    try:
        creds = str(stack.auth.creds_path("admin"))
        nc = await nats.connect(stack.nats_url, user_credentials=creds, name="floor-bench")
        js = nc.jetstream()
        halves = ["a", "b"] if execs == 2 else ["all"]
        if not core:
            await js.add_stream(StreamConfig(name=STREAM, subjects=["floor.sig.>"], storage=StorageType.FILE))
            for h in halves:
                await js.add_consumer(STREAM, ConsumerConfig(
                    durable_name=f"exec-{h}", ack_policy=AckPolicy.EXPLICIT, max_ack_pending=10_000,
                    filter_subject="floor.sig.>" if h == "all" else f"floor.sig.{h}.>"))
        ws_port, http_port = natsd.free_port(), natsd.free_port()
        mode = "core" if core else "js"

        def start(name: str, *args) -> None:
            procs[name] = subprocess.Popen([sys.executable, "-m", "bench.floor_procs", *map(str, args)], cwd=ROOT,
                                           env=stack.env(), stderr=open(stack.tmp / f"{name}.log", "wb"))
            stack.procs.append(procs[name])

        start("http", "http", http_port)
        natsd.wait_port("127.0.0.1", http_port, timeout=30, proc=procs["http"])
        for h in halves:
            start(f"exec-{h}", "execution", stack.nats_url, creds, f"exec-{h}", h, stack.tmp / f"exec-{h}.db",
                  http_port, mode)
        start("strategy", "strategy", stack.nats_url, creds, mode)
        start("sender", "sender", ws_port, INTERVAL, FRAMES)
        natsd.wait_port("127.0.0.1", ws_port, timeout=30, proc=procs["sender"])
        await until_ready(nc, halves)
        start("ticker", "ticker", stack.nats_url, creds, f"ws://127.0.0.1:{ws_port}")
        if RT:  # every thread of the floor's processes and of nats-server first on a core when it wakes
            for pid in [p.pid for p in procs.values()] + [stack.procs[0].pid]:
                subprocess.run(["chrt", "-a", "-f", "-p", "10", str(pid)], check=True, capture_output=True)

        async def count() -> int:
            total = 0
            for h in halves:
                total += msgspec.msgpack.decode((await nc.request(f"floor.report.exec-{h}", b"count", timeout=10)).data)[0]
            return total

        bar_s = INTERVAL * FRAMES
        deadline = time.monotonic() + 60
        while await count() == 0:
            if time.monotonic() > deadline:
                raise SystemExit(f"no signal handled; see {stack.tmp}/*.log")
            await asyncio.sleep(0.2)
        await asyncio.sleep(bar_s * WARMUP_BARS - bar_s / 2)  # mid-bar: no burst in flight
        n0, t0 = await count(), time.monotonic()
        cpu0 = {k: cpu_seconds(p.pid) for k, p in procs.items()} | {"nats": cpu_seconds(stack.procs[0].pid)}
        load0 = os.getloadavg()[0]
        while (n1 := await count()) - n0 < want and time.monotonic() - t0 < want / 24 * bar_s * 3 + 30:
            await asyncio.sleep(bar_s)
        cpu = {k: (cpu_seconds(p.pid) - cpu0[k]) / max(1, n1 - n0) * 1e3 for k, p in procs.items()}
        cpu["nats"] = (cpu_seconds(stack.procs[0].pid) - cpu0["nats"]) / max(1, n1 - n0) * 1e3
        rows: list[Stamp] = []
        for h in halves:
            got = await nc.request(f"floor.report.exec-{h}", b"all", timeout=10)
            rows += msgspec.msgpack.decode(got.data, type=list[Stamp])
        acks = b"{}" if core else (await nc.request("floor.acks", b"", timeout=10)).data
        first = min(r.bar for r in rows)
        rows = [r for r in rows if r.bar >= first + WARMUP_BARS]
        await nc.close()
        ms = 1e6
        stages = {"tick → signal": [(r.created - r.tick) / ms for r in rows]}
        if core:
            stages["signal → handler (core NATS)"] = [(r.arrived - r.created) / ms for r in rows]
        else:
            stages["signal → stored"] = [(r.stored - r.created) / ms for r in rows]
            stages["stored → handler"] = [(r.arrived - r.stored) / ms for r in rows]
        stages["handler → handed"] = [(r.handed - r.arrived) / ms for r in rows]
        firsts: dict[int, float] = {}  # a bar's first signal to reach its handler: the hop without the burst's queue
        for r in rows:
            firsts[r.bar] = min(firsts.get(r.bar, 1e9), (r.arrived - (r.stored or r.created)) / ms)
        stages[f"  a bar's first signal, {'signal' if core else 'stored'} → handler"] = list(firsts.values())
        return {"name": f"floor, signals on {'core NATS' if core else 'JetStream'}, {execs} execution process"
                        f"{'es' * (execs > 1)}{', SCHED_FIFO' if RT else ''}", "total": [(r.handed - r.tick) / ms for r in rows], "stages": stages,
                "cpu": cpu, "load": (load0, os.getloadavg()[0]), "acks": acks.decode()}
    except BaseException:
        for log in sorted(stack.tmp.glob("*.log")):
            print(f"--- {log.name}:\n{log.read_text()[-1500:]}", file=sys.stderr)
        raise
    finally:
        stack.close()


async def until_ready(nc, halves: list[str]) -> None:
    deadline = time.monotonic() + 60
    for name in [f"floor.report.exec-{h}" for h in halves] + ["floor.acks"]:
        while True:
            try:
                await nc.request(name, b"count", timeout=0.5)
                break
            except Exception:  # noqa: BLE001 - not subscribed yet
                if time.monotonic() > deadline:
                    raise SystemExit(f"{name}: no answer")
                await asyncio.sleep(0.1)


def show(r: dict) -> None:
    print(f"{r['name']}: {len(r['total']):,} signals, load {r['load'][0]:.2f} → {r['load'][1]:.2f} "
          f"on {os.cpu_count()} cores\n  tick → order handed: {fmt(r['total'])}\n"
          + "".join(f"    {k}: {fmt(v)}\n" for k, v in r["stages"].items())
          + "  CPU ms per signal: " + ", ".join(f"{k} {v:.3f}" for k, v in r["cpu"].items())
          + f"; total {sum(r['cpu'].values()):.2f}" + (f"; stream acks {r['acks']}" if r["acks"] != "{}" else ""),
          flush=True)


KTA_FIGURE = re.compile(r"internal tick → order p50 ([\d.]+) ms, p99 ([\d.]+) ms")
KTA_STAGE = re.compile(r"^\s+(tick → signal|  of which signal → stored|  of which stored → the handler|the decision"
                       r"|decided → handed|waiting for the user's decision lock)[^:]*: p50 ([\d.]+)", re.M)


def run_kta(orders: int, log: Path) -> dict | None:
    """kta's half of bench/tick_to_order.py (its figure, its stages' p50 and its CPU line), output kept in ``log``."""
    load0 = os.getloadavg()[0]
    out = subprocess.run([sys.executable, "bench/tick_to_order.py", str(orders), "30", "0"], cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True)
    log.write_text(out.stdout + out.stderr)
    fig = KTA_FIGURE.search(out.stdout)
    if not fig:
        print(f"kta run failed (rc {out.returncode}); see {log}", flush=True)
        return None
    kta_part = out.stdout.split("fair baseline")[0]
    cpu = re.search(r"CPU ms per order: (.*)", out.stdout)
    per = dict(re.findall(r"([\w-]+) ([\d.]+)", cpu.group(1).split(";")[0])) if cpu else {}
    r = {"p50": float(fig.group(1)), "p99": float(fig.group(2)), "load": (load0, os.getloadavg()[0]),
         "cpu_total": sum(float(v) for k, v in per.items() if not k.startswith("execution-")),
         "stages": {k.strip(): float(v) for k, v in KTA_STAGE.findall(kta_part)}, "cpu": cpu.group(1) if cpu else "?"}
    print(f"kta (bench/tick_to_order.py {orders} 30 0): internal p50 {r['p50']:.2f} / p99 {r['p99']:.2f} ms, "
          f"load {r['load'][0]:.2f} → {r['load'][1]:.2f}; stages p50 {r['stages']}; CPU ms per order {r['cpu']}",
          flush=True)
    return r


def verdict(floors: list[dict], ktas: list[dict]) -> None:
    f50 = statistics.median(summary(r["total"])[0] for r in floors)
    f99 = statistics.median(summary(r["total"])[2] for r in floors)
    loads = [x for r in floors + ktas for x in r["load"]]
    print(f"\nfloor, median of {len(floors)} run{'s' * (len(floors) > 1)}: tick → order handed p50 {f50:.2f} / p99 "
          f"{f99:.2f} ms (goal p50 < {TARGET_P50:g} / p99 < {TARGET_P99:g} ms: goal / floor {TARGET_P50 / f50:.2f}× / "
          f"{TARGET_P99 / f99:.2f}×); load {min(loads):.2f}–{max(loads):.2f} on {os.cpu_count()} cores")
    if ktas:
        k50, k99 = statistics.median(r["p50"] for r in ktas), statistics.median(r["p99"] for r in ktas)
        fcpu = statistics.median(sum(r["cpu"].values()) for r in floors)
        kcpu = statistics.median(r["cpu_total"] for r in ktas)
        print(f"kta, median of {len(ktas)}: internal p50 {k50:.2f} / p99 {k99:.2f} ms; kta / floor {k50 / f50:.1f}× at "
              f"p50, {k99 / f99:.1f}× at p99; CPU ms an order, every process: kta {kcpu:.2f} / floor {fcpu:.2f} "
              f"({kcpu / fcpu:.1f}×; kta's includes its fills, stops and order updates)")
        floor_stage = {s: statistics.median(summary(r["stages"][s])[0] for r in floors)
                       for s in STAGES if s in floors[0]["stages"]}
        kta_stage = {s: statistics.median(r["stages"].get(k, 0.0) for r in ktas) for s, k in (
            ("tick → signal", "tick → signal"), ("signal → stored", "of which signal → stored"),
            ("stored → handler", "of which stored → the handler"))}
        kta_stage["handler → handed"] = statistics.median(
            sum(r["stages"].get(k, 0.0) for k in ("waiting for the user's decision lock", "the decision",
                                                  "decided → handed")) for r in ktas)
        gaps = {s: kta_stage[s] - floor_stage.get(s, 0.0) for s in kta_stage}
        print("by stage, p50 ms kta / floor (gap): " + "; ".join(
            f"{s} {kta_stage[s]:.2f} / {floor_stage.get(s, 0.0):.2f} ({gaps[s]:+.2f})" for s in kta_stage)
              + f"; the largest gap: {max(gaps, key=gaps.get)}")
    if f50 >= TARGET_P50 or f99 >= TARGET_P99:
        print(f"verdict: the floor itself is above the goal (p50 {f50:.2f} vs {TARGET_P50:g} ms, p99 {f99:.2f} vs "
              f"{TARGET_P99:g} ms): on this machine the goal is below what this architecture (separate processes, "
              f"NATS hops, a durable signal, a durable order) allows", flush=True)
    else:
        print(f"verdict: the floor is under the goal (p50 {f50:.2f} < {TARGET_P50:g} ms, p99 {f99:.2f} < "
              f"{TARGET_P99:g} ms): the goal is reachable with this architecture on this machine"
              + (f"; kta is {k50 / f50:.0f}× / {k99 / f99:.0f}× above the floor" if ktas else ""), flush=True)


async def main(want: int, rounds: int, kta_orders: int) -> None:
    print(f"the floor of tick → order: {want:,} signals a run, {rounds} round{'s' * (rounds > 1)}"
          f"{f' alternating with kta ({kta_orders} orders)' if kta_orders else ''}; {machine_load()}", flush=True)
    logs = Path(tempfile.mkdtemp(prefix="kta-floor-logs-"))
    floors, ktas = [], []
    for n in range(rounds):
        first_kta = kta_orders and n % 2 == 1  # alternate which goes first
        if first_kta and (k := run_kta(kta_orders, logs / f"kta-{n}.log")):
            ktas.append(k)
        floors.append(await run_floor(want))
        show(floors[-1])
        if kta_orders and not first_kta and (k := run_kta(kta_orders, logs / f"kta-{n}.log")):
            ktas.append(k)
    for kw in ({"core": True}, {"execs": 1}):
        r = await run_floor(max(240, want // 2), **kw)
        show(r)
    verdict(floors, ktas)


if __name__ == "__main__":
    a = sys.argv[1:]
    asyncio.run(main(int(a[0]) if a else 1008, int(a[1]) if len(a) > 1 else 1, int(a[2]) if len(a) > 2 else 0))
