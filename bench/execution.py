"""Signal → order acknowledged by the broker → journaled, through a real nats-server, kite_sim and
the execution worker running as its own process (``kta worker execution``).

nats-server runs with kta's authentication (``bench/stack.py``), as ``kta up`` runs it.
Latency is measured from publishing the signal on JetStream to receiving the worker's PLACED order
event, which it publishes only after the sim answered with an order id and the journal recorded it
(the broker's round trip INCLUDED; ``bench/tick_to_order.py`` measures the path without it).

Phases:
  paced   1,000 signals at 5/s for one account: p50 / p99 latency over 1,000 samples, no queue in front
          of the order gate.
  burst   N signals at once for one account: sustained signals/s, which Kite's 10 orders/s per
          account (enforced by the worker's order gate) caps; ratio against that limit.
  engine  signals straight into the worker's Desk in this process, order gate opened up: first one
          at a time (the original design's synchronous place-per-signal loop: placed, answered and
          written before the next is read), then 16 in flight (the worker's intake batch).
Baselines: Kite's 10 orders/s per account, that synchronous loop (measured here: the fair baseline), and
the original design's ~100 ms from a logged signal to the order placed.
The sim runs with its own rate limiter off, so only kta's gate is measured. Bounded: < 2 min.
Everything (sim, worker, bench) shares the machine's cores: the engine phase is CPU-bound there, so
its figures vary with load; the gated figures are what an account gets in production.
Usage: python bench/execution.py [paced_signals] [burst_signals]
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.stack import Stack, login, machine_load  # noqa: E402
from execution_worker import signals  # noqa: E402
from execution_worker.engine import Desk  # noqa: E402
from execution_worker.journal import Journal  # noqa: E402
from execution_worker.order_gate import OrderGate  # noqa: E402
from shared import messages as m  # noqa: E402
from shared import subjects  # noqa: E402
from shared.broker_sessions import put_session, vault_for  # noqa: E402
from shared.bus import Bus, BusError, RequestTimeout  # noqa: E402
from shared.kite.client import KiteClient  # noqa: E402
from shared.kite.ratelimit import RateLimiter  # noqa: E402
from shared.trading.risk import RiskManager  # noqa: E402

KITE_ORDERS_PER_SECOND = 10.0
PACE = 5.0  # signals/s in the latency phase: under the gate's 10/s and what one worker keeps up with under load
DESIGN_MS = 100.0  # the original design: "Order placed → ~100-500ms", after "Signal logged → ~60ms"
API_KEY, USER = "kta-demo", "DEMO01"
OPEN_LIMITS = m.RiskLimits(max_orders_per_minute=100_000, max_open_orders=100_000, max_position_qty=100_000)
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


async def main(n_paced: int, n_burst: int) -> None:
    stack = Stack("kta-bench-exec-")
    try:
        if True:  # one indentation level with the steps below
            root = stack.start_sim()
            settings = stack.settings(reconcile_interval=30.0, positions_interval=30.0)
            tmp = stack.tmp
            bus = await stack.bus()
            await bus.ensure_streams()
            token = login(root)
            await put_session(bus, vault_for(settings), USER, API_KEY, token)
            stack.worker("execution", settings)
            for _ in range(120):  # the worker owns the user's partition once it answers
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
            print(f"{n_paced:,} signals paced at {PACE:g}/s (under Kite's 10 orders/s), then a burst of {n_burst}; "
                  f"{machine_load()}", flush=True)
            lat = await paced(bus, watch, run, n_paced, PACE)
            rate, blat, lost = await burst(bus, watch, run, n_burst)
            client = KiteClient(API_KEY, token, root=root, rate_limiter=RateLimiter(
                {"quote": [(1, 1)], "historical": [(1, 3)], "orders": [(1, 10**6)], "other": [(1, 10**6)]}))
            sync_rate = await engine_only(bus, client, tmp, run, n_burst, 1)
            e_rate = await engine_only(bus, client, tmp, run, n_burst, 16)
            sync_ms = 1e3 / sync_rate if sync_rate else float("nan")
            print(f"figure: paced {PACE:g}/s, 1 account: n={len(lat):,}  p50 {pct(lat, .5):.1f} ms  p99 {pct(lat, .99):.1f} ms "
                  f"(signal published -> order acknowledged by the sim -> journaled -> event received); vs the fair "
                  f"baseline (the synchronous place-answer-write loop, in-process, no NATS: {sync_ms:.1f} ms a signal) "
                  f"{sync_ms / pct(lat, .5):.2f}x at p50; vs the original design's {DESIGN_MS:g} ms from a logged signal "
                  f"to the order placed (its best case) {DESIGN_MS / pct(lat, .5):.0f}x at p50, "
                  f"{DESIGN_MS / pct(lat, .99):.1f}x at p99; {machine_load()}")
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
        stack.close()


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(main(int(args[0]) if args else 1000, int(args[1]) if len(args) > 1 else 100))
