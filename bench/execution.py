"""Signal → order acknowledged by the broker → journaled, through a real nats-server, kite_sim and
the execution worker running as its own process (``kta worker execution``).

Latency is measured from publishing the signal on JetStream to receiving the worker's PLACED order
event, which it publishes only after the sim answered with an order id and the journal recorded it.

Phases:
  paced   5 signals/s for one account: p50 / p99 latency with no queue in front of the order gate.
  burst   N signals at once for one account: sustained signals/s, which Kite's 10 orders/s per
          account (enforced by the worker's order gate) caps; ratio against that limit.
  engine  signals straight into the worker's Desk in this process, order gate opened up: first one
          at a time (the original design's synchronous place-per-signal loop: placed, answered and
          written before the next is read), then 16 in flight (the worker's intake batch).
Baselines: Kite's 10 orders/s per account, and that synchronous loop.
The sim runs with its own rate limiter off, so only kta's gate is measured. Bounded: < 2 min.
Everything (sim, worker, bench) shares the machine's cores: the engine phase is CPU-bound there, so
its figures vary with load; the gated figures are what an account gets in production.
Usage: python bench/execution.py [burst_signals]
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from execution_worker import signals  # noqa: E402
from execution_worker.engine import Desk  # noqa: E402
from execution_worker.journal import Journal  # noqa: E402
from execution_worker.order_gate import OrderGate  # noqa: E402
from shared.trading.risk import RiskManager  # noqa: E402
from shared import messages as m  # noqa: E402
from shared import natsd, subjects  # noqa: E402
from shared.bus import Bus, BusError, RequestTimeout  # noqa: E402
from shared.config import load, to_env  # noqa: E402
from shared.kite.client import KiteClient  # noqa: E402
from shared.kite.ratelimit import RateLimiter  # noqa: E402
from shared.broker_sessions import put_session, vault_for  # noqa: E402

KITE_ORDERS_PER_SECOND = 10.0
API_KEY, API_SECRET, USER, PASSWORD = "kta-demo", "kta-demo-secret", "DEMO01", "demo"
OPEN_LIMITS = m.RiskLimits(max_orders_per_minute=100_000, max_open_orders=100_000, max_position_qty=100_000)
SIM = """
import uvicorn
from kite_sim.app import build_app
from kite_sim.main import make_sim
uvicorn.run(build_app(make_sim(7, 60.0, True, "http://127.0.0.1/cb", rate_limits=False)), host="127.0.0.1",
            port={port}, log_level="warning", ws="websockets-sansio")
"""


def login(root: str) -> str:
    r = httpx.post(f"{root}/connect/login", data={"api_key": API_KEY, "user_id": USER, "password": PASSWORD})
    rt = re.search(r"request_token=([^&]+)", r.headers["location"]).group(1)
    checksum = hashlib.sha256(f"{API_KEY}{rt}{API_SECRET}".encode()).hexdigest()
    r = httpx.post(f"{root}/session/token", data={"api_key": API_KEY, "request_token": rt, "checksum": checksum},
                   headers={"X-Kite-Version": "3"})
    return r.json()["data"]["access_token"]


def signal(sid: str, i: int) -> m.Signal:  # alternate buys and sells of one share: the book stays flat
    return m.Signal(id=sid, user_id=USER, strategy_id="bench", strategy="manual", exchange=m.Exchange.NSE,
                    tradingsymbol="INFY", instrument_token=408065, transaction_type=m.TransactionType(
                        "BUY" if i % 2 == 0 else "SELL"), quantity=1, product=m.Product.MIS,
                    order_type=m.OrderType.MARKET, created_at=time.time_ns())


class Watch:
    """PLACED (or failed) order events by signal id, with the time each arrived."""

    def __init__(self) -> None:
        self.placed: dict[str, int] = {}
        self.failed: dict[str, str] = {}
        self.changed = asyncio.Event()

    async def on_event(self, ev: m.OrderEvent, msg) -> None:
        if ev.state == "PLACED" and ev.signal_id not in self.placed:
            self.placed[ev.signal_id] = time.perf_counter_ns()
        elif ev.state in ("FAILED", "REFUSED"):
            self.failed[ev.signal_id] = ev.status_message
        self.changed.set()

    async def until(self, ids: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not all(i in self.placed or i in self.failed for i in ids) and time.monotonic() < deadline:
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), 1.0)
            except asyncio.TimeoutError:
                pass


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


async def paced(bus: Bus, watch: Watch, run: str, n: int, rate: float) -> list[float]:
    sent: dict[str, int] = {}
    for i in range(n):
        sig = signal(f"{run}-p{i}", i)
        sent[sig.id] = time.perf_counter_ns()
        await bus.js_publish(subjects.signals(USER), sig, msg_id=sig.id)
        await asyncio.sleep(1 / rate)
    await watch.until(list(sent), 30)
    return [(watch.placed[s] - t) / 1e6 for s, t in sent.items() if s in watch.placed]


async def burst(bus: Bus, watch: Watch, run: str, n: int) -> tuple[float, list[float], int]:
    sigs = [signal(f"{run}-b{i}", i) for i in range(n)]
    start = time.perf_counter_ns()
    sent = {}
    for sig in sigs:
        sent[sig.id] = time.perf_counter_ns()
        await bus.js_publish(subjects.signals(USER), sig, msg_id=sig.id)
    await watch.until(list(sent), 60)
    done = [watch.placed[s] for s in sent if s in watch.placed]
    rate = len(done) / ((max(done) - start) / 1e9) if done else 0.0
    return rate, [(watch.placed[s] - t) / 1e6 for s, t in sent.items() if s in watch.placed], len(sent) - len(done)


async def engine_only(bus: Bus, client: KiteClient, data: Path, run: str, n: int, concurrency: int) -> float:
    """The Desk of one account fed directly, the order gate and the client's limiter opened up;
    ``concurrency`` 1 is the original design's synchronous loop (place, answer, write, next)."""
    journal = Journal(data / f"engine-{concurrency}.db")
    desk = Desk(USER, bus, journal, client, RiskManager(USER, OPEN_LIMITS, journal), {}, -1, 0.5,
                gate=OrderGate(per_second=10**6, per_minute=10**6, per_day=10**6))
    sigs = [signal(f"{run}-e{concurrency}-{i}", i) for i in range(n)]
    sem = asyncio.Semaphore(concurrency)

    async def one(sig: m.Signal) -> None:
        async with sem:
            await signals.on_signal(desk, sig)

    start = time.perf_counter()
    await asyncio.gather(*(one(s) for s in sigs))
    elapsed = time.perf_counter() - start
    placed = sum(1 for s in sigs for r in journal.orders_of_signal(s.id) if r.get("order_id"))
    if placed < n:
        print(f"  engine x{concurrency}: only {placed}/{n} placed")
    return placed / elapsed


async def main(n_burst: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        nats_port, sim_port = natsd.free_port(), natsd.free_port()
        procs = [natsd.start(nats_port, tmp / "js")]
        procs.append(subprocess.Popen([sys.executable, "-c", SIM.format(port=sim_port)], cwd=ROOT,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        try:
            natsd.wait_port("127.0.0.1", sim_port, timeout=30, proc=procs[-1])
            root = f"http://127.0.0.1:{sim_port}"
            url = f"nats://127.0.0.1:{nats_port}"
            settings = load(environ={}, nats_url=url, data_dir=str(tmp / "var"), kite_root=root,
                            kite_ws_root=f"ws://127.0.0.1:{sim_port}/ws", kite_login_url=f"{root}/connect/login",
                            log_level="WARNING", reconcile_interval=30.0, positions_interval=30.0)
            bus = await Bus.connect(url, "bench")
            await bus.ensure_streams()
            token = login(root)
            await put_session(bus, vault_for(settings), USER, API_KEY, token)
            env = {k: v for k, v in os.environ.items() if not k.startswith("KTA_")} | to_env(settings)
            procs.append(subprocess.Popen([sys.executable, "-m", "kta", "worker", "execution"], cwd=ROOT,
                                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            for _ in range(60):  # the worker owns the user's partition once it answers
                try:
                    reply = await bus.request(subjects.cmd(USER, "risk", "limits"),
                                              m.SetRiskLimits(limits=OPEN_LIMITS), timeout=0.5)
                except (BusError, RequestTimeout):
                    await asyncio.sleep(0.5)
                    continue
                if isinstance(reply, m.Ok):
                    break
            else:
                raise SystemExit("the execution worker never answered")
            watch = Watch()
            await bus.subscribe(subjects.orders(USER), m.OrderEvent, watch.on_event)
            run = f"r{int(time.time())}"
            await paced(bus, watch, run + "w", 5, 10.0)  # warm-up: desk opened, instruments loaded
            lat = await paced(bus, watch, run, 40, 5.0)
            rate, blat, lost = await burst(bus, watch, run, n_burst)
            client = KiteClient(API_KEY, token, root=root, rate_limiter=RateLimiter(
                {"quote": [(1, 1)], "historical": [(1, 3)], "orders": [(1, 10**6)], "other": [(1, 10**6)]}))
            sync_rate = await engine_only(bus, client, tmp, run, n_burst, 1)
            e_rate = await engine_only(bus, client, tmp, run, n_burst, 16)
            print(f"paced 5/s, 1 account: n={len(lat)}  p50 {pct(lat, .5):.1f} ms  p99 {pct(lat, .99):.1f} ms "
                  f"(signal published -> order acknowledged by the sim -> journaled -> event received)")
            print(f"burst {n_burst} signals, 1 account, through the worker: {rate:.1f} signals/s sustained, "
                  f"p50 {pct(blat, .5):.0f} ms p99 {pct(blat, .99):.0f} ms (queued at the order gate), "
                  f"{lost} not placed; {rate / KITE_ORDERS_PER_SECOND:.2f}x Kite's {KITE_ORDERS_PER_SECOND:g} "
                  f"orders/s per account")
            print(f"engine, order gate opened: synchronous place-per-signal loop (original design) "
                  f"{sync_rate:.1f} signals/s; 16 in flight {e_rate:.1f} signals/s = {e_rate / sync_rate:.2f}x the "
                  f"synchronous loop, {e_rate / KITE_ORDERS_PER_SECOND:.1f}x Kite's per-account limit")
            confirming = [t for t in asyncio.all_tasks() if t.get_name().startswith("confirm:")]
            await asyncio.wait_for(asyncio.gather(*confirming, return_exceptions=True), 30)  # read-backs
            await bus.close()
            await client.aclose()
        finally:
            for p in reversed(procs):
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100))
