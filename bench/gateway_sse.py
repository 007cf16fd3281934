"""Dashboards at scale: N traders live on the same 50 instruments, full-mode ticks (with depth, as the
ticker publishes them) arriving at 200 a second, every trader's dashboard stream (``/sse``) open. Is the
data on each dashboard fresh?

The gateway runs as deployed (``gateway.main.build`` under uvicorn, its own process, NATS with kta's
authentication). Each tick's last price encodes its publish time (ms), so every row a dashboard receives
tells its age on arrival; readers (separate processes, raw sockets: reading must not be the bottleneck)
collect those ages. Per step (more traders each step) it prints the rows' freshness p50 / p99 / max, the
gateway's CPU share, its tick subscriptions and renders. FRESH = p99 <= 1 s; the figure is the most
traders kept fresh (target: 500). The ticker, strategy and execution workers and kite_sim run beside it
(the dashboard page asks them); 50 traders load the dashboard (GET /) at once first with no stream open
(target p50 < 300 ms; the gateway's and the workers' CPU per load beside it, which the load does not stretch) and
again at the end while every stream stays open. The machine is shared: its load is printed with each step;
freshness is wall time (what a trader sees), so load makes it worse, never better.

Fair baseline, same run, same load: the gateway as it was before the shared tick fan-out (commit
BASELINE, from git: one subscription per user and token, each event rendered per client). Ratio: traders
kept fresh vs that baseline, and vs the original design (one dashboard websocket per process, 1 user).
First loads: kta's p50 vs the same baseline gateway's (same page, same run) and vs the original design's
dashboard done plainly (bench/original_dashboard.py: a shell page without data; same readers, same run).
Usage: python bench/gateway_sse.py [max traders] [seconds per step]
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.feed import Instrument, token  # noqa: E402
from bench.stack import Stack, cpu_seconds, machine_load, percentile  # noqa: E402
from shared import messages as m  # noqa: E402
from shared import natsd, subjects  # noqa: E402

BASELINE = "daba42c"  # main before the shared tick fan-out
STEPS = [10, 50, 100, 200, 350, 500]
N_TOKENS, RATE, BOUND_MS, WRAP = 50, 200, 1000.0, 10_000_000
READERS = 2  # reader processes
LOADS = 50  # dashboards loaded at once at the end of a run
LOAD_P50: dict[str, float] = {}  # 50 loads at once while every stream is open
QUIET_P50: dict[str, float] = {}  # 50 loads at once before any stream
QUIET_N: list[int] = []  # how many that was (fewer with fewer traders)
LOAD_CPU: dict[str, float] = {}  # the web process's CPU ms per dashboard of those quiet loads (load-proof)
PRICE = re.compile(rb'data-ltp="([0-9.]+)"')
GATEWAY = """
import json, os, sys, uvicorn
# uvicorn's own choice ("auto") would take uvloop and httptools whenever installed: both gateways run the A/B's
fast = os.environ.get("KTA_EVENT_LOOP") == "uvloop"
from shared import config
from shared.config import load
for name in [k for k in os.environ if k.startswith("KTA_") and k not in {config.env_name(f) for f in config.FIELDS}]:
    del os.environ[name]  # a setting added since the baseline's commit: that gateway never had it
from gateway.main import build
settings = load()
live = json.loads(open(sys.argv[1]).read())
import inspect
app = build(settings, **({"own_process": True} if "own_process" in inspect.signature(build).parameters else {}))
def set_live(a):
    a.state.services.trading.live_tokens.update(live)
app.on_startup.append(set_live)
uvicorn.run(app, host="127.0.0.1", port=settings.gateway_port, log_level="warning",
            loop="uvloop" if fast else "asyncio", http="httptools" if fast else "h11")
"""


def user_ids(n: int) -> list[str]:
    return [f"SSE{i:03d}" for i in range(n)]


# ---- reader processes: log in, hold dashboards open, measure the age of every row ----------------

def reader(port: int, ctrl) -> None:
    asyncio.run(_reader(port, ctrl))


async def _reader(port: int, ctrl) -> None:
    ages: list[float] = []
    counts = {"messages": 0, "rows": 0, "errors": 0}
    tasks: list[asyncio.Task] = []
    cookies: list[str] = []
    loop = asyncio.get_running_loop()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        while True:
            cmd = await loop.run_in_executor(None, ctrl.recv)
            if cmd[0] == "open":
                for uid in cmd[1]:
                    client.cookies.clear()
                    r = await client.post("/auth/send-otp", json={"zerodha_id": uid, "email": f"{uid.lower()}@b.local"})
                    await client.post("/auth/verify-otp", json={"zerodha_id": uid, "otp": r.json()["dev_otp"]})
                    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
                    cookies.append(cookie)
                    tasks.append(asyncio.create_task(_dashboard(port, cookie, ages, counts)))
                ctrl.send(len(tasks))
            elif cmd[0] == "login":  # traders logged in without a stream (the quiet dashboard loads)
                for uid in cmd[1]:
                    client.cookies.clear()
                    r = await client.post("/auth/send-otp", json={"zerodha_id": uid, "email": f"{uid.lower()}@b.local"})
                    await client.post("/auth/verify-otp", json={"zerodha_id": uid, "otp": r.json()["dev_otp"]})
                    cookies.append("; ".join(f"{k}={v}" for k, v in client.cookies.items()))
                client.cookies.clear()
                ctrl.send(len(cookies))
            elif cmd[0] == "cookies":  # sessions made elsewhere (the original design's dashboard)
                cookies.extend(cmd[1])
                ctrl.send(len(cookies))
            elif cmd[0] == "reset":
                ages.clear()
                counts.update(messages=0, rows=0)
                ctrl.send(True)
            elif cmd[0] == "loads":  # this many dashboards (GET /) loaded at once, each its own trader
                async def load(cookie: str) -> float:
                    t0 = time.perf_counter()
                    r = await client.get("/", headers={"Cookie": cookie})
                    return (time.perf_counter() - t0) * 1000 if r.status_code == 200 else float("inf")
                client.cookies.clear()
                ctrl.send(await asyncio.gather(*(load(c) for c in cookies[:cmd[1]])))
            elif cmd[0] == "report":
                ctrl.send((ages[:], dict(counts)))
            elif cmd[0] == "stop":
                for t in tasks:
                    t.cancel()
                ctrl.send(True)
                return


async def _dashboard(port: int, cookie: str, ages: list[float], counts: dict) -> None:
    try:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(f"GET /sse HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n"
                f"Cookie: {cookie}\r\n\r\n".encode())
        buf = b""
        while chunk := await r.read(1 << 16):
            buf += chunk
            end = buf.rfind(b"\r\n\r\n")  # the end of the last whole event (Litestar ends lines with CRLF)
            if end < 0:
                continue
            block, buf = buf[:end], buf[end + 4:]
            now_ms = time.time() * 1000
            counts["messages"] += block.count(b"event: ticks")
            for hit in PRICE.finditer(block):
                counts["rows"] += 1
                ages.append((now_ms - round(float(hit.group(1)) * 100)) % WRAP)
    except (OSError, asyncio.IncompleteReadError):
        counts["errors"] += 1


def start_readers(port: int) -> tuple[list, list]:
    """READERS reader processes on ``port``: (their pipes, the processes)."""
    ctx = mp.get_context("spawn")
    pipes, procs = [], []
    for _ in range(READERS):
        mine, theirs = ctx.Pipe()
        p = ctx.Process(target=reader, args=(port, theirs), daemon=True)
        p.start()
        pipes.append(mine)
        procs.append(p)
    return pipes, procs


def loads_at_once(pipes: list, n: int) -> list[float]:
    """``n`` dashboards (GET /) loaded at once, split over the readers: their times (ms), sorted."""
    for pipe in pipes:
        pipe.send(("loads", n // READERS))
    return sorted(t for pipe in pipes for t in pipe.recv())


def stop_readers(pipes: list, procs: list) -> None:
    for pipe in pipes:
        pipe.send(("stop",))
    for p in procs:
        p.join(10)


# ---- this process: the gateway under test, the ticks, the steps ------------------------------------

async def publish_ticks(bus, stop: asyncio.Event) -> int:
    """Full ticks for N_TOKENS instruments at RATE a second; the last price is the publish time in ms."""
    insts = [Instrument(token(i), __import__("random").Random(i)) for i in range(N_TOKENS)]
    sent, start = 0, time.perf_counter()
    while not stop.is_set():
        inst = insts[sent % N_TOKENS]
        inst.step()
        tick = inst.tick("full")
        tick.last_price = (time.time_ns() // 1_000_000 % WRAP) / 100
        tick.received_at = time.time_ns()
        await bus.publish(subjects.ticks(inst.token), tick)
        sent += 1
        ahead = start + sent / RATE - time.perf_counter()
        if ahead > 0:
            await asyncio.sleep(ahead)
    return sent


async def stats(bus) -> dict:
    try:
        reply = m.reply_decoder.decode((await bus.nc.request(subjects.service_health("gateway"), b"", timeout=5)).data)
        return reply.data
    except Exception:  # noqa: BLE001
        return {}


async def run_gateway(stack: Stack, label: str, root: Path, max_users: int, seconds: float) -> int:
    """Steps up the number of traders on the gateway from ``root``; the most kept fresh."""
    from gateway import users

    port = natsd.free_port()
    settings = stack.settings(gateway_port=port, env="dev", data_dir=str(stack.tmp / f"var-{label}"))
    ids = user_ids(max_users)
    for uid in ids:
        users.add_user(settings, zerodha_id=uid, email=f"{uid.lower()}@b.local", api_key="k", api_secret="s")
    live = {uid: [token(i) for i in range(N_TOKENS)] for uid in ids}
    workers = [stack.worker(service, settings) for service in ("ticker", "strategy", "execution")]
    live_file = stack.tmp / f"live-{label[:4]}.json"
    live_file.write_text(json.dumps(live))
    gw = subprocess.Popen([sys.executable, "-c", GATEWAY, str(live_file)], cwd=root,
                          env={**stack.env(settings), "PYTHONPATH": str(root)}, stdout=subprocess.DEVNULL,
                          stderr=open(stack.tmp / f"gateway-{label[:4]}.log", "wb"))
    stack.procs.append(gw)
    natsd.wait_port("127.0.0.1", port, timeout=60, proc=gw)
    pipes, procs = start_readers(port)
    bus = await stack.bus(f"bench-{label}")
    best, opened = 0, 0
    print(f"{label}: {N_TOKENS} instruments, full ticks at {RATE}/s, {seconds:g} s a step; FRESH = row age p99 <= "
          f"{BOUND_MS:g} ms", flush=True)
    print(f"{'traders':>8} {'streams':>8} {'gw cpu':>7} {'subs':>6} {'renders/s':>10} {'msgs/s/dash':>12} "
          f"{'age p50':>9} {'p99':>9} {'max':>9}", flush=True)
    try:
        for i, pipe in enumerate(pipes):  # first 50 dashboards loaded at once with no stream open
            pipe.send(("login", ids[:LOADS][i::READERS]))
        logged_in = sum(pipe.recv() for pipe in pipes)
        cpu0 = [cpu_seconds(p.pid) for p in (gw, *workers)]
        times = loads_at_once(pipes, LOADS)
        cpu = [(cpu_seconds(p.pid) - c) * 1000 / len(times) for p, c in zip((gw, *workers), cpu0)]
        print(f"{logged_in} dashboards (GET /) loaded at once, no stream open: p50 {percentile(times, 0.5):.0f} ms, "
              f"p99 {percentile(times, 0.99):.0f} ms (target p50 < 300 ms); CPU a load: gateway {cpu[0]:.1f} ms, "
              f"workers {sum(cpu[1:]):.1f} ms; {machine_load()}", flush=True)
        QUIET_P50[label] = percentile(times, 0.5)
        LOAD_CPU[label] = cpu[0]
        QUIET_N.append(len(times))
        for n in [s for s in STEPS if s <= max_users]:
            new = ids[opened:n]
            for i, pipe in enumerate(pipes):
                pipe.send(("open", new[i::READERS]))
            opened = sum(pipe.recv() for pipe in pipes)
            stop = asyncio.Event()
            pub = asyncio.create_task(publish_ticks(bus, stop))
            await asyncio.sleep(2.0)  # the streams settle; then measure
            for pipe in pipes:
                pipe.send(("reset",))
                pipe.recv()
            s0, cpu0, t0 = await stats(bus), cpu_seconds(gw.pid), time.perf_counter()
            await asyncio.sleep(seconds)
            elapsed = time.perf_counter() - t0
            reports = []
            for pipe in pipes:
                pipe.send(("report",))
                reports.append(pipe.recv())
            cpu, s1 = cpu_seconds(gw.pid) - cpu0, await stats(bus)
            stop.set()
            await pub
            ages = sorted(a for r in reports for a in r[0])
            msgs = sum(r[1]["messages"] for r in reports)
            renders = (s1.get("renders", 0) - s0.get("renders", 0)) / elapsed if "renders" in s1 else float("nan")
            p99 = percentile(ages, 0.99)
            fresh = bool(ages) and p99 <= BOUND_MS
            print(f"{n:>8} {s1.get('clients', '?'):>8} {cpu / elapsed * 100:>6.0f}% {s1.get('tick_subscriptions', '-'):>6} "
                  f"{renders:>10.0f} {msgs / elapsed / max(1, opened):>12.1f} {percentile(ages, 0.5):>7.0f}ms "
                  f"{p99:>7.0f}ms {ages[-1] if ages else float('nan'):>7.0f}ms  {'fresh' if fresh else 'STALE'} "
                  f"(load {os.getloadavg()[0]:.1f})"
                  f"{'  (%d dashboards failed)' % errors if (errors := sum(r[1]['errors'] for r in reports)) else ''}",
                  flush=True)
            if not fresh:
                break
            best = n
        pipes[0].send(("loads", 1))
        alone = pipes[0].recv()[0]
        times = loads_at_once(pipes, LOADS)
        print(f"{LOADS} dashboards (GET /) loaded at once while {opened} traders stream: p50 "
              f"{percentile(times, 0.5):.0f} ms, p99 {percentile(times, 0.99):.0f} ms, max {times[-1]:.0f} ms "
              f"(target p50 < 300 ms); one dashboard alone {alone:.0f} ms; {machine_load()}", flush=True)
        LOAD_P50[label] = percentile(times, 0.5)
    finally:
        stop_readers(pipes, procs)
        await bus.close()
        for proc in (gw, *workers):
            stack.stop(proc)
    return best


def original_loads(stack: Stack, n: int) -> float:
    """The p50 of ``n`` first loads at once of the original design's dashboard (bench/original_dashboard.py:
    a shell page, its TradingService built per request), by the same readers as kta's."""
    from bench import original_dashboard

    port = natsd.free_port()
    (stack.tmp / "original").mkdir()
    db = stack.tmp / "original" / "app.db"
    cookies = original_dashboard.seed(db, user_ids(n))
    app = subprocess.Popen([sys.executable, str(ROOT / "bench" / "original_dashboard.py"), str(port), str(db)],
                           cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                           stderr=open(stack.tmp / "original" / "app.log", "wb"))
    stack.procs.append(app)
    pipes, procs = [], []
    try:
        natsd.wait_port("127.0.0.1", port, timeout=60, proc=app)
        pipes, procs = start_readers(port)
        for i, pipe in enumerate(pipes):
            pipe.send(("cookies", cookies[i::READERS]))
            pipe.recv()
        cpu0 = cpu_seconds(app.pid)
        times = loads_at_once(pipes, n)
        LOAD_CPU["original"] = (cpu_seconds(app.pid) - cpu0) * 1000 / len(times)
        print(f"original design's dashboard (a shell page without data, its service built per request; "
              f"bench/original_dashboard.py): {len(times)} loaded at once p50 {percentile(times, 0.5):.0f} ms, p99 "
              f"{percentile(times, 0.99):.0f} ms; CPU {LOAD_CPU['original']:.1f} ms a load; {machine_load()}", flush=True)
        return percentile(times, 0.5)
    finally:
        stop_readers(pipes, procs)
        stack.stop(app)


def ratio(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.2f}x" if theirs and theirs == theirs else "n/a"


def baseline_tree(stack: Stack) -> Path | None:
    out = stack.tmp / "baseline"
    try:
        out.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", BASELINE], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(out)], input=archive.stdout, check=True)
        return out
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"(no baseline: git archive {BASELINE} failed: {e})")
        return None


async def main(max_users: int, seconds: float) -> None:
    stack = Stack("kta-bench-sse-")
    try:
        stack.start_sim()  # the dashboard's instrument names and broker reads go to the sim, as with kta up
        ours = await run_gateway(stack, "kta (shared fan-out)", ROOT, max_users, seconds)
        tree = baseline_tree(stack)
        theirs = await run_gateway(stack, f"baseline (gateway at {BASELINE})", tree, max_users, seconds) if tree else 0
        plain = original_loads(stack, QUIET_N[0] if QUIET_N else LOADS)
        quiet = list(QUIET_P50.values())
        kta_p50, fair_p50 = quiet[0] if quiet else float("nan"), quiet[1] if len(quiet) > 1 else float("nan")
        print(f"first loads ({QUIET_N[0] if QUIET_N else LOADS} at once, no stream open): kta p50 {kta_p50:.0f} ms (target < 300 ms) = "
              f"{ratio(kta_p50, fair_p50)} the fair baseline's {fair_p50:.0f} ms (the gateway at {BASELINE}, same "
              f"run, same page), {ratio(kta_p50, plain)} the original design's {plain:.0f} ms (a shell page without "
              f"data: kta's page carries every panel)", flush=True)
        cpus = list(LOAD_CPU.values())
        if len(cpus) == 3:  # kta, the baseline gateway, the original design's app
            print(f"first loads by the web process's CPU (load-proof): kta {cpus[0]:.1f} ms a load = "
                  f"{ratio(cpus[0], cpus[1])} the fair baseline's {cpus[1]:.1f} ms, {ratio(cpus[0], cpus[2])} the "
                  f"original design's {cpus[2]:.1f} ms", flush=True)
        vs = f"{ours / theirs:.1f}x the baseline gateway's {theirs}" if theirs else \
            f"the baseline gateway stale at {STEPS[0]} (kept none fresh)"
        print(f"figure: {ours} traders × {N_TOKENS} instruments at {RATE} ticks/s kept fresh (p99 <= 1 s; target 500) "
              f"= {vs}, "
              f"{ours}x the original design's one dashboard; 50 dashboards loaded at once, no stream open, p50 "
              f"{QUIET_P50.get(next(iter(QUIET_P50), ''), float('nan')):.0f} ms (baseline gateway "
              f"{list(QUIET_P50.values())[-1] if len(QUIET_P50) > 1 else float('nan'):.0f} ms), with every stream open p50 "
              f"{LOAD_P50.get(next(iter(LOAD_P50), ''), float('nan')):.0f} ms (baseline gateway "
              f"{list(LOAD_P50.values())[-1] if len(LOAD_P50) > 1 else float('nan'):.0f} ms); {machine_load()}")
    finally:
        stack.close()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # kill <pid>: the stack is still closed
    args = sys.argv[1:]
    asyncio.run(main(int(args[0]) if args else 500, float(args[1]) if len(args) > 1 else 8.0))
