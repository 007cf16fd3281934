"""Tick received → order sent, through the whole stack as ``kta up`` runs it: nats-server with kta's
authentication, kite_sim, and the ticker, strategy and execution workers as their own processes.

6 symbols × 4 strategies live on minute bars (the sim's clock at SPEED×, so a bar closes every
60/SPEED s and all six symbols' bars close together), spread over 8 accounts (3 strategies each; its
entries also get their stop-losses placed). The strategy (``bench_flip``) enters on one bar close and
exits on the next, so every bar close of every strategy is a signal: the strategy's own cost is nil and
what is measured is kta's path.

Two scenarios, each with its own 8 accounts, one after the other on the same stack:
* **one Kite app per account** (8 api_keys: how kta is deployed, one Kite Connect app per trader) — the figure;
* **one api_key shared by the 8 accounts** (kta-demo): every broker read of every account shares that key's
  10 requests/s, as a deployment serving several traders from one app would.

Per order, three times (kite_sim's own rate limiter is off: only kta's limits are measured):
(a) **internal**: the triggering tick's ``received_at`` (the ticker's decode time) to the moment the
    execution worker hands the order to its HTTP client, minus what it waited on Kite meanwhile —
    the figure, the issue's goal (``shared/kite/waits.py`` marks the waits; the execution worker
    reports them per order: ``GetExecutionSummary(timings=True)``);
(b) the waits on Kite before that order: the **rate budget** (the order gate's 10 orders/s per
    account, the api_key's 10 requests/s — Kite's limits) and the **broker's answers** (an exit
    waiting for its stop's cancel to be confirmed, a read, an earlier order's round trip);
(c) **end to end**: tick to the moment kite_sim's HTTP server hands the order to its app (a stamp
    taken by an ASGI wrapper in the sim process, by the order's tag) — what a trader waits.
The first two bar closes are warm-up.

Baselines, printed as ratios:
* a FAIR baseline (bench/tick_baseline.py) measured in the same run on the same sim: the original design done plainly in one
  process (official parser on the WebSocket frame, minute bars, EMA with pandas on bar close (not
  per tick), the signal journaled with sqlite-utils, the order placed with httpx, one signal after
  the other as its ``_process_signal`` does), same 24 strategies and 8 accounts; its internal time
  is measured the same way (tick to the order handed to httpx, minus the earlier orders' round trips
  it awaited), its end to end at the same sim stamp;
* the original design's own figure: tick → "signal logged" ~60 ms, before the order is placed
  (/work/shared/reference/original-design.md, "Tick received → ~0ms ... Signal logged → ~60ms").
Target (issue #18): internal p50 < 1.5 ms, p99 < 5 ms over >= 1,000 orders.
The machine is shared: the load (uptime) is printed with the figures; latencies are wall time (what
a trader waits), so load inflates them — the CPU time each process spent per order is printed too.
Usage: python bench/tick_to_order.py [orders] [speed] [orders of the shared-key scenario]
``T2O_EXECUTION_WORKERS=N``: N execution worker processes (``execution_workers``: the users' partitions spread
over them) instead of ``kta up``'s default (2); their CPU is printed each and summed as ``execution``.
``T2O_DUMP=file.json``: every measured order's stamps, one row each (tag, kind, user, signal created, tick
received, at the sim's server, then the worker's timing row: since, handed, budget, broker, arrived, locked,
decided, stored; ns) — to see how a bar's signals were served one after the other.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.stack import API_KEY, API_SECRET, Stack, cpu_seconds, login, machine_load, percentile, until  # noqa: E402
from bench.tick_baseline import run_baseline  # noqa: E402
from bench.tick_scenario import (  # noqa: E402
    KEYS,
    PER_APP,
    SHARED,
    STRATEGIES_PER_SYMBOL,
    TOKENS,
    WARMUP_BARS,
    Result,
    plan,
)
from kta.cli import UP_EXECUTION_WORKERS  # noqa: E402
from shared import messages as m  # noqa: E402
from shared import natsd, partition, subjects  # noqa: E402
from shared.broker_sessions import put_session, vault_for  # noqa: E402
from shared.kv_keys import live_entries  # noqa: E402

DESIGN_MS = 60.0  # the original design: tick received → signal logged, before the order is placed
TARGET_P50, TARGET_P99 = 1.5, 5.0
SIM = """
import json, sys, time
from urllib.parse import parse_qs
import uvicorn
from kite_sim.accounts import App, User
from kite_sim.app import build_app
from kite_sim.main import make_sim

sim = make_sim(7, float(sys.argv[2]), True, "http://127.0.0.1:9/cb", rate_limits=False)
for uid in sys.argv[3].split(","):
    sim.accounts.users[uid] = User(uid, "bench", uid, uid.lower() + "@b.local")
for key in sys.argv[4].split(","):  # one Kite Connect app per trader
    sim.accounts.apps.setdefault(key, App(key, key + "-secret", "http://127.0.0.1:9/cb"))
app = build_app(sim)
stamps = {}

async def stamped(scope, receive, send):
    # the moment the sim's server hands an order request to the app, by the order's tag
    if scope["type"] == "http" and scope["path"] == "/bench/stamps":
        body = json.dumps(stamps).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})
        return
    if scope["type"] == "http" and scope["method"] == "POST" and scope["path"].startswith("/orders/"):
        t, parts = time.time_ns(), []
        async def rx():
            msg = await receive()
            if msg["type"] == "http.request":
                parts.append(msg.get("body", b""))
                if not msg.get("more_body"):
                    tag = parse_qs(b"".join(parts).decode()).get("tag", [""])[0]
                    if tag:
                        stamps[tag] = t
            return msg
        return await app(scope, rx, send)
    return await app(scope, receive, send)

uvicorn.run(stamped, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", ws="websockets-sansio",
            loop="asyncio", http="h11")  # the same sim whatever is installed (uvicorn's "auto" takes uvloop)
"""
STRATEGY_WORKER = """
from bench.tick_to_order import register
register()
from kta.cli import main
main(["worker", "strategy"])
"""


def register() -> None:
    """The bench's strategy, in the strategy worker's registry (run inside that process)."""
    from shared.messages import TransactionType
    from strategy_worker.strategies import registry
    from strategy_worker.strategies.base import BaseStrategy
    from strategy_worker.strategies.params import EquityParams

    class Flip(BaseStrategy):
        """In on one bar close, out on the next: a signal at every bar close, at no cost of its own."""

        name = "bench_flip"
        description = "bench: enters on a bar close, exits on the next"
        interval = "minute"

        class Params(EquityParams):
            pass

        def on_bar(self, bar) -> list:
            sig = (self.exit(0.9, "flip out") if self.held()
                   else self.entry(TransactionType.BUY, 0.6, "flip in", 0.02, price=bar.close))
            return [sig] if sig is not None else []

    registry.register(Flip)


class Watch:
    """Signals and order events of every account, as the bench (admin) sees them on NATS."""

    def __init__(self) -> None:
        self.signals: dict[str, m.Signal] = {}
        self.orders: dict[str, tuple[str, str]] = {}  # tag -> (signal id, kind) of entries and exits
        self.refused: dict[str, int] = defaultdict(int)

    async def on_signal(self, sig, msg) -> None:
        if isinstance(sig, m.Signal):
            self.signals[sig.id] = sig

    async def on_order(self, ev: m.OrderEvent, msg) -> None:
        if ev.kind in ("entry", "exit") and ev.tag and ev.signal_id:
            self.orders.setdefault(ev.tag, (ev.signal_id, ev.kind))
        if ev.state in ("REFUSED", "FAILED", "REJECTED"):
            self.refused[f"{ev.state}: {ev.status_message[:60]}"] += 1


async def timings(bus, accounts: list[str]) -> dict[str, tuple[int, ...]]:
    """tag -> (tick, handed, budget wait, broker wait, arrived, locked, decided, stored) in ns, from the execution
    worker."""
    out = {}
    for uid in accounts:
        reply = await bus.request(subjects.cmd(uid, "execution", "get_execution_summary"),
                                  m.GetExecutionSummary(timings=True), timeout=30)
        if not isinstance(reply, m.Ok):
            raise SystemExit(f"execution summary of {uid}: {reply}")
        for tag, *row in reply.data.get("timings", []):
            out[tag] = tuple(row)
    return out


async def run_kta(stack: Stack, name: str, accounts: list[str], want: int, bar_s: float) -> Result:
    workers = int(os.environ.get("T2O_EXECUTION_WORKERS", UP_EXECUTION_WORKERS))
    settings = stack.settings(seed_days=0, seed_interval="minute", risk={"max_orders_per_minute": 400},
                              execution_workers=workers)  # as kta up: each worker knows how many copies started
    bus = await stack.bus("bench-t2o")
    await bus.ensure_streams()
    watch = Watch()
    for uid in accounts:
        await bus.subscribe(subjects.signals(uid), m.AnySignal, watch.on_signal)
        await bus.subscribe(subjects.orders(uid), m.OrderEvent, watch.on_order)
    procs = {"ticker": stack.worker("ticker", settings), "execution": stack.worker("execution", settings)}
    procs |= {f"execution-{n}": stack.worker("execution", settings) for n in range(2, workers + 1)}
    procs["strategy"] = subprocess.Popen([sys.executable, "-c", STRATEGY_WORKER], cwd=ROOT, env=stack.env(settings),
                                         stdout=subprocess.DEVNULL, stderr=open(stack.tmp / "strategy.log", "ab"))
    stack.procs.append(procs["strategy"])
    for service in procs:
        await until(lambda s=service.split("-")[0]: health(bus, s), f"{service} worker health")
    await until(lambda: spread(bus, workers), f"the users' partitions spread over {workers} execution workers")
    vault = vault_for(settings)
    for uid in accounts:
        key = KEYS[uid]
        await put_session(bus, vault, uid, key, login(stack.sim_root, uid, "bench", key,
                                                      API_SECRET if key == API_KEY else key + "-secret"))
    the_plan = plan(accounts)
    for n, (uid, token) in enumerate(the_plan):
        reply = await bus.request(subjects.cmd(uid, "strategy", "add"), m.AddStrategy(
            strategy="bench_flip", tokens=[token], strategy_id=f"flip{n:02d}", params={"quantity": 1}), timeout=30)
        if not isinstance(reply, m.Ok):
            raise SystemExit(f"adding the bench strategy failed: {reply}")
    for uid in accounts:
        mine = sorted({t for u, t in the_plan if u == uid})
        got = await bus.gather(subjects.cmd(uid, "live", "start"), m.StartLive(tokens=mine, mode=m.TickMode.FULL),
                               expect={"ticker", "strategy", "execution"}, timeout=90)  # a loaded machine
        if not all(isinstance(r, m.Ok) for r in got.values()) or len(got) != 3:
            raise SystemExit(f"StartLive for {uid} failed: {got}")
    keys = sorted({KEYS[uid] for uid in accounts})
    print(f"kta, {name}: {len(the_plan)} strategies ({len(TOKENS)} symbols × {STRATEGIES_PER_SYMBOL}) live in "
          f"{len(accounts)} accounts on {len(keys)} api_key{'s' * (len(keys) > 1)}, minute bars closing together every "
          f"{bar_s:g} s; {machine_load()}", flush=True)
    await until(lambda: len(watch.signals) >= 1, "the first signal", timeout=bar_s * 4 + 60)
    await asyncio.sleep(bar_s * WARMUP_BARS)
    skip = set(watch.signals)
    cpu0 = {k: cpu_seconds(p.pid) for k, p in procs.items()}
    cpu0["nats"] = cpu_seconds(stack.procs[0].pid)
    msgs0 = stack.nats_messages()
    deadline = time.monotonic() + max(120.0, want / len(the_plan) * bar_s * 10)  # signals wait for fills
    async with httpx.AsyncClient(base_url=stack.sim_root) as http:
        while time.monotonic() < deadline:
            await asyncio.sleep(bar_s)
            stamps = (await http.get("/bench/stamps")).json()
            done = [t for t, (sid, _) in watch.orders.items() if sid not in skip and t in stamps and sid in watch.signals]
            print(f"  {len(done):,} orders measured", flush=True)
            if len(done) >= want:
                break
    cpu = {k: cpu_seconds(p.pid) - cpu0[k] for k, p in procs.items()}
    cpu["nats"] = cpu_seconds(stack.procs[0].pid) - cpu0["nats"]
    if workers > 1:  # the execution workers' sum first (the figure), then each
        cpu = {"execution": sum(v for k, v in cpu.items() if k.startswith("execution")),
               **{(k if k.startswith("execution-") else k.replace("execution", "execution-1")): v
                  for k, v in cpu.items()}}
    msgs1 = stack.nats_messages()
    timed = await timings(bus, accounts)
    result = Result(f"kta, {name} ({len(accounts)} accounts, {len(keys)} api_key{'s' * (len(keys) > 1)})")
    for tag in done:
        sig = watch.signals[watch.orders[tag][0]]
        if not sig.tick_received_at or tag not in timed:
            continue
        since, handed, budget, broker, arrived, locked, decided, stored = timed[tag]
        result.add((handed - since - budget - broker) / 1e6, budget / 1e6, broker / 1e6,
                   (stamps[tag] - sig.tick_received_at) / 1e6,
                   **{"tick → signal (ticker, NATS, bar, strategy)": (sig.created_at - sig.tick_received_at) / 1e6,
                      "signal → execution worker's handler (JetStream, the worker's loop)":
                          (arrived - sig.created_at) / 1e6,
                      "  of which signal → stored in its stream (strategy worker's publish, nats-server)":
                          (stored - sig.created_at) / 1e6,
                      "  of which stored → the handler (nats-server's delivery, the execution worker's loop)":
                          (arrived - stored) / 1e6,
                      "waiting for the user's decision lock": (locked - arrived) / 1e6,
                      "the decision (risk, journal; Kite's waits included)": (decided - locked) / 1e6,
                      "decided → handed to the HTTP client, Kite's waits excluded":
                          (handed - decided - budget - broker) / 1e6,
                      "order handed → at the broker's server (HTTP client, sim)": (stamps[tag] - handed) / 1e6})
    if os.environ.get("T2O_DUMP"):
        with open(os.environ["T2O_DUMP"], "w") as f:
            json.dump([[tag, watch.orders[tag][1], (sig := watch.signals[watch.orders[tag][0]]).user_id, sig.created_at,
                        sig.tick_received_at, stamps[tag], *timed[tag]] for tag in done if tag in timed], f)
    result.print()
    print("  CPU ms per order: " + ", ".join(f"{k} {v / max(1, len(result.e2e)) * 1e3:.2f}" for k, v in cpu.items())
          + (f"; refused/failed: {dict(watch.refused)}" if watch.refused else ""), flush=True)
    per = max(1, len(result.e2e))
    print("  NATS messages per order (sent / received): " + ", ".join(
        f"{k} {(msgs1[k][0] - msgs0[k][0]) / per:.1f} / {(msgs1[k][1] - msgs0[k][1]) / per:.1f}"
        for k in sorted(msgs1) if k in msgs0 and k.startswith("kta-")), flush=True)
    for uid in accounts:
        await bus.gather(subjects.cmd(uid, "live", "stop"), m.StopLive(positions="square_off"),
                         expect={"ticker", "strategy", "execution"}, timeout=30)
    for proc in procs.values():
        stack.stop(proc)
    await bus.close()
    return result


async def spread(bus, workers: int) -> bool:
    """Every partition of the execution workers leased, ``workers`` of them each holding its share (a command
    for a user whose partition is changing hands meanwhile goes unanswered)."""
    kv = await bus.kv(partition.KV_LEASES, ttl=partition.LEASE_SECONDS)
    entries = await live_entries(kv, "execution")
    holders = Counter([e.value for k, e in entries.items() if k.startswith("execution.p")])
    members = [k for k in entries if k.startswith("execution.m.")]
    return len(members) == workers and sum(holders.values()) == partition.PARTITIONS \
        and max(holders.values()) <= -(-partition.PARTITIONS // workers)


async def health(bus, service: str) -> bool:
    try:
        await bus.nc.request(subjects.service_health(service), b"", timeout=0.5)
        return True
    except Exception:  # noqa: BLE001
        return False


def ratio(base: Result, ours: Result, values) -> str:
    return " / ".join(f"{percentile(sorted(values(base)), q) / percentile(sorted(values(ours)), q):.2f}x at "
                      f"p{int(q * 100)}" for q in (0.5, 0.99))


async def main(want: int, speed: float, shared_want: int) -> None:
    stack = Stack("kta-bench-t2o-")
    try:
        port = natsd.free_port()
        keys = sorted({k for k in KEYS.values() if k != API_KEY})
        sim = subprocess.Popen([sys.executable, "-c", SIM, str(port), str(speed), ",".join(PER_APP + SHARED),
                                ",".join(keys)], cwd=ROOT, env=stack.env(), stdout=subprocess.DEVNULL,
                               stderr=open(stack.tmp / "sim.log", "wb"))
        stack.procs.append(sim)
        natsd.wait_port("127.0.0.1", port, timeout=60, proc=sim)
        stack.use_sim(port)
        bar_s = 60.0 / speed
        ours = await run_kta(stack, "one Kite app per account", PER_APP, want, bar_s)
        base = await run_baseline(stack, min(want, 480), bar_s)
        shared = None
        if shared_want:
            try:
                shared = await run_kta(stack, "one api_key shared by every account", SHARED, shared_want, bar_s)
            except SystemExit as e:  # the figure and its baseline are measured already: say why this one is missing
                print(f"shared api_key scenario not measured: {e}; {machine_load()}", flush=True)
        p50, p99 = ours.p(ours.internal, 0.5), ours.p(ours.internal, 0.99)
        met = p50 < TARGET_P50 and p99 < TARGET_P99
        print(f"figure: (a) internal tick → order p50 {p50:.2f} ms, p99 {p99:.2f} ms over {len(ours.internal):,} "
              f"orders, one Kite app per account (target p50 < {TARGET_P50:g}, p99 < {TARGET_P99:g} ms: "
              f"{'met' if met else 'NOT met'}); vs the fair baseline's internal {ratio(base, ours, lambda r: r.internal)}"
              f"; (b) rate-budget wait p50 {ours.p(ours.budget, 0.5):.2f} / p99 {ours.p(ours.budget, 0.99):.2f} ms; "
              f"(c) end to end p50 {ours.p(ours.e2e, 0.5):.2f} / p99 {ours.p(ours.e2e, 0.99):.2f} ms, vs the fair "
              f"baseline's {ratio(base, ours, lambda r: r.e2e)}; vs the original design's ~{DESIGN_MS:g} ms to a "
              f"logged signal {DESIGN_MS / ours.p(ours.e2e, 0.5):.2f}x at p50 end to end; {machine_load()}", flush=True)
        if shared is not None:
            print(f"shared api_key: (a) internal p50 {shared.p(shared.internal, 0.5):.2f} / p99 "
                  f"{shared.p(shared.internal, 0.99):.2f} ms, (b) rate-budget wait p50 {shared.p(shared.budget, 0.5):.2f}"
                  f" / p99 {shared.p(shared.budget, 0.99):.2f} ms, (c) end to end p50 {shared.p(shared.e2e, 0.5):.2f} /"
                  f" p99 {shared.p(shared.e2e, 0.99):.2f} ms over {len(shared.e2e):,} orders", flush=True)
    finally:
        stack.close()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # kill <pid>: the stack is still closed
    args = sys.argv[1:]
    n = int(args[0]) if args else 1000
    asyncio.run(main(n, float(args[1]) if len(args) > 1 else 30.0, int(args[2]) if len(args) > 2 else n))
