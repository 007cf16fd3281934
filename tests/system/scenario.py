"""A trading session under faults, through the real stack: nats-server, kite_sim, the ticker and
strategy workers in this process, the execution worker as its own process (SIGKILLed and started again
mid-run). Several random strategies on several symbols and a random iron condor trade while a seeded
schedule injects broker rejections, partial fills, latency, dropped ticker connections and price jumps;
every few seconds the invariants (``invariants.py``) are judged from the broker's books and kta's journal.
The session crosses a trading day: the sim (with settlement) is moved to just before kta's own MIS cutoff,
kta must flatten its MIS positions before the close, the broker settles (NRML legs carried overnight) and the
next day opens, the strategies trading on through it all. Then, on that second day, a configured daily loss
trips the kill switch (flat, no entry after). At the end the strategies stop, kta's book must equal the
broker's, and a square-off leaves both flat (those two closing phases: ``closing.py``)."""

from __future__ import annotations

import asyncio
import os
import random
import signal as signals
import subprocess
import time
from dataclasses import dataclass, field

from pathlib import Path

from execution_worker.journal import Journal
from shared import messages as m
from shared import subjects
from shared.config import to_env
from shared.kite.budget import SharedBudget
from shared.kite.client import KiteClient
from shared.broker_sessions import put_session, vault_for
from strategy_worker.main import amain as strategy_main
from strategy_worker.strategies import registry
from tests import simfork
from tests.helpers import running, stack_settings, wait_health
from tests.simkit import a_morning, login
from tests.system.broker import USER, call
from tests.system.chaos import Chaos, ChaosCondor
from tests.system.closing import kill_switch_phase, wind_down
from tests.system.day_close import CUTOFF, DayClose
from tests.system.invariants import Invariants
from ticker_worker.main import amain as ticker_main

ROOT = Path(__file__).resolve().parents[2]
SYMBOLS = {"INFY": 408065, "TCS": 2953217, "RELIANCE": 738561, "ITC": 424961, "WIPRO": 969473, "SBIN": 779521}
NIFTY = 256265  # the index whose nearest expiry the condors trade
LIMIT = 30  # max_position_qty
FEED_GAP = 10.0  # seconds a symbol may go without a tick before it counts as a silent stop
PRICE_JUMP_PCT = 1.5
SAMPLE_TICKS = 4  # a sample each time every symbol ticked this often again: a market minute (60x, 0.25 s heartbeat)


class Feed:
    """The ticks the scenario sees, counted per instrument: the scenario paces itself on the market moving on
    (every symbol ticked ``n`` times more), not on the wall clock."""

    def __init__(self, tokens) -> None:
        self.tokens = list(tokens)
        self.counts = dict.fromkeys(self.tokens, 0)
        self.last: dict[int, float] = {}  # token -> monotonic time of its newest tick
        self._moved = asyncio.Condition()

    async def on_tick(self, tick: m.Tick) -> None:
        async with self._moved:
            self.last[tick.instrument_token] = time.monotonic()
            self.counts[tick.instrument_token] = self.counts.get(tick.instrument_token, 0) + 1
            self._moved.notify_all()

    async def moved_on(self, n: int = SAMPLE_TICKS, timeout: float = FEED_GAP) -> bool:
        """Until every symbol ticked ``n`` more times; False after ``timeout`` s without that (a stalled feed:
        the caller's silent-stop check names it)."""
        target = {tok: c + n for tok, c in self.counts.items()}
        async with self._moved:
            try:
                await asyncio.wait_for(self._moved.wait_for(
                    lambda: all(self.counts[t] >= target[t] for t in self.tokens)), timeout)
            except TimeoutError:
                return False
        return True


@dataclass
class Report:
    seed: int
    seconds: float
    invariants: Invariants
    faults: list[str] = field(default_factory=list)
    orders: int = 0
    fills: int = 0
    refused: int = 0
    external: int = 0
    settled: int = 0  # expiry settlements adopted (``expiry:`` fills)
    ticks: int = 0

    halt: str = ""  # how the kill switch phase went
    option_fills: int = 0
    days: str = ""  # how the session crossed the day

    def line(self) -> str:
        return (f"seed {self.seed}: {self.seconds:.0f}s, {self.invariants.samples} samples, {self.orders} orders, "
                f"{self.fills} fills, {self.refused} refused signals, {self.external} external fills, {self.settled} expiry "
                f"settlements, {self.ticks} ticks, "
                f"{self.invariants.checked_protection} protection checks, {self.option_fills} option fills "
                f"({self.invariants.checked_hedges} hedge checks), faults: {', '.join(self.faults)}; "
                f"days: {self.days or 'one'}; kill switch: {self.halt or 'not reached'}")


class ExecutionProcess:
    """``kta worker execution`` as its own process (kta up runs it so), killable."""

    def __init__(self, settings, log_path: Path) -> None:
        # INFO: its log stamps the restart (partitions acquired, desk opened, first reconciliation pass)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("KTA_")} | to_env(settings) \
            | {"KTA_LOG_LEVEL": "INFO"}
        self.log_path = log_path
        self.proc: simfork.Forked | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:  # forked from the tests' preloaded server (tests/simfork.py)
            self.proc = simfork.spawn(["worker", "execution"], cwd=ROOT, env=self.env, log=log.fileno(),
                                      program="kta")

    def kill(self) -> None:
        self.proc.send_signal(signals.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signals.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def run(bus, sim, data_dir: Path, log_dir: Path, *, seed: int, seconds: float, strategies: int = 4,
              kill_at: float = 0.45, close_at: float = 0.6, condors: int = 1, condor_params: dict | None = None) -> Report:
    """``strategies`` random equity strategies over the six symbols and ``condors`` random iron condors on
    NIFTY's nearest expiry; at ``close_at`` of ``seconds`` the day closes (the second day then trades for the
    rest of ``seconds``). ``sim``: a kite_sim with settlement (``--settle``)."""
    rng = random.Random(seed)
    sim.reset_faults()
    await a_morning(sim)  # a morning: the day's close is the scenario's to choose
    sim.admin("accounts/reset", {"user_id": USER})
    limits = m.RiskLimits(max_position_qty=LIMIT, max_orders_per_minute=400, max_open_orders=200,
                          max_daily_loss=10_000_000_00, max_exposure=10_000_000_000_00,
                          max_exposure_per_symbol=1_000_000_000_00, max_exposure_per_strategy=1_000_000_000_00)
    settings = stack_settings(bus.nc.connected_url.geturl(), data_dir, sim, seed_days=0, seed_interval="minute",
                              reconcile_interval=2.0, positions_interval=2.0, risk=limits, log_level="WARNING",
                              mis_square_off_at=f"{CUTOFF[0]:02d}:{CUTOFF[1]:02d}")
    token = login(sim)
    await put_session(bus, vault_for(settings), USER, sim.api_key, token)
    report = Report(seed, seconds, Invariants(limit=LIMIT, grace=6.0))
    symbols = {v: k for k, v in SYMBOLS.items()}
    async with KiteClient(sim.api_key, token, root=sim.root) as k:
        await _list_options(k, report.invariants, symbols)
    feed = Feed(SYMBOLS.values())
    stale_alerts: list[m.Alert] = []

    async def on_tick(tick, msg):
        await feed.on_tick(tick)
        report.ticks += 1

    async def on_alert(a, msg):
        if a.kind == "feed_stale":
            stale_alerts.append(a)

    for tok in SYMBOLS.values():
        await bus.subscribe(subjects.ticks(tok), m.Tick, on_tick)
    await bus.subscribe(subjects.alerts(USER), m.Alert, on_alert)
    registry.register(Chaos)
    registry.register(ChaosCondor)
    execution = ExecutionProcess(settings, log_dir / "execution.log")
    kite = KiteClient(sim.api_key, token, root=sim.root, rate_limiter=SharedBudget(bus, sim.api_key))
    journal = Journal(data_dir / "journal.db")
    try:
        execution.start()
        async with running(strategy_main, settings), running(ticker_main, settings):
            for service in ("strategy", "ticker", "execution"):
                await wait_health(bus, service, timeout=60)
            for i in range(strategies):
                added = await bus.request(subjects.cmd(USER, "strategy", "add"), m.AddStrategy(
                    strategy=Chaos.name, tokens=list(SYMBOLS.values()), strategy_id=f"chaos-{i}",
                    params={"quantity": (5, 8, 12, 3)[i % 4], "seed": seed, "rate": 0.012}))
                assert isinstance(added, m.Ok), added
            for i in range(condors):
                added = await bus.request(subjects.cmd(USER, "strategy", "add"), m.AddStrategy(
                    strategy=ChaosCondor.name, tokens=[NIFTY], strategy_id=f"condor-{i}",
                    params={"seed": seed, "rate": 0.25, "lots": 1, **(condor_params or {})}))
                assert isinstance(added, m.Ok), added
            tokens = [*SYMBOLS.values(), *([NIFTY] if condors else [])]
            started = await bus.gather(subjects.cmd(USER, "live", "start"), m.StartLive(tokens=tokens),
                                       expect={"ticker", "strategy", "execution"}, timeout=30)
            assert all(isinstance(r, m.Ok) for r in started.values()), started
            await _session(bus, sim, kite, journal, execution, report, rng, seconds, kill_at, feed, stale_alerts,
                           DayClose(sim, seconds * close_at), symbols)
            await kill_switch_phase(bus, sim, kite, journal, report, set(SYMBOLS))  # the pins: equities
            await wind_down(bus, sim, kite, journal, report, symbols)
            listed = {i.tradingsymbol for i in await call(kite.instruments, "NFO")}  # an expired contract is not
    finally:
        registry.unregister(Chaos.name)
        registry.unregister(ChaosCondor.name)
        execution.stop()
        await kite.aclose()
        sim.reset_faults()
        for name in ("INFY", "TCS", "RELIANCE", "ITC", "WIPRO", "SBIN"):
            sim.admin("price", {"underlying": name, "price": None})
    orders = journal.orders(USER)
    report.orders = len([r for r in orders if r["order_id"]])
    report.fills = len(journal.trades(USER))
    report.refused = sum(1 for o in journal.outcomes(USER) if o["kind"] == "refused")
    report.external = sum(1 for t in journal.trades(USER) if t["order_id"].startswith("external:"))
    report.settled = sum(1 for t in journal.trades(USER) if t["order_id"].startswith("expiry:"))
    # what expired at the close the broker settled: kta books it as its expiry, never as a trade outside kta (a leg
    # filled after its expiry day's last positions pass once was: its contract in no list the next day)
    outside = [(t["strategy_id"], t["tradingsymbol"], t["quantity"]) for t in journal.trades(USER)
               if t["order_id"].startswith("external:") and t["exchange"] == "NFO" and t["tradingsymbol"] not in listed]
    if outside:
        report.invariants.fail(seconds, f"expired contracts adopted as trades outside kta, not settled: {outside}")
    report.option_fills = sum(1 for t in journal.trades(USER) if t["tradingsymbol"] in report.invariants.option_types)
    return report


async def _list_options(kite, inv: Invariants, symbols: dict[int, str]) -> None:
    """NIFTY's listed options into the checker's lot sizes and option types (and the token names): again on a
    new day, which lists new contracts."""
    for i in await call(kite.instruments, "NFO"):
        if i.name == "NIFTY" and i.instrument_type in ("CE", "PE"):
            inv.lots[i.tradingsymbol], inv.option_types[i.tradingsymbol] = i.lot_size, i.instrument_type
            symbols[i.instrument_token] = i.tradingsymbol


async def _look(sim, kite, journal, inv: Invariants, t: float, up_since: float) -> dict[tuple[str, str], int]:
    """One sample of the invariants; returns the broker's net positions it judged ({} when the trading day
    turned between the reads: a sample of two days' books says nothing)."""
    day = sim.trading_day()
    positions = (await call(kite.positions)).net
    broker_orders = await call(kite.orders)
    if sim.trading_day() != day:
        return {}
    net = {(p.tradingsymbol, p.product): p.quantity for p in positions if p.quantity}
    trades = journal.trades(USER)
    _new_options(inv, [*(s for s, _ in net), *(o.tradingsymbol for o in broker_orders),
                       *(r["tradingsymbol"] for r in trades)])
    inv.sample(t, net, broker_orders, journal.orders(USER), trades, up_since, day)
    return net


def _new_options(inv: Invariants, symbols) -> None:
    """NIFTY options the sim listed after the checker read the dump (strikes around a moved spot): known by their
    name (NIFTY...CE / PE) and the index's one lot size, so no limit or protection rule takes them for shares."""
    lot = next(iter(inv.lots.values()), 0)
    for s in symbols:
        if s not in inv.option_types and s.startswith("NIFTY") and s[-2:] in ("CE", "PE") and lot:
            inv.option_types[s], inv.lots[s] = s[-2:], lot


async def _session(bus, sim, kite, journal, execution, report, rng, seconds, kill_at, feed: Feed, stale_alerts,
                   close: DayClose, symbols: dict[int, str]):
    inv = report.invariants
    t0 = time.monotonic()
    up_since, killed, jumped = 0.0, False, []
    next_fault = 3.0
    while not close.over(t := time.monotonic() - t0, seconds):
        if t > seconds * 3:
            inv.fail(t, f"the day close never ended (phase {close.phase})")
            break
        if not killed and t >= seconds * kill_at:
            execution.kill()
            killed_at = time.time()
            killed = True
            await feed.moved_on(6)  # the broker keeps trading (stops may fire) while no worker runs
            execution.start()
            await wait_health(bus, "execution", timeout=60)
            up_since = time.monotonic() - t0
            report.faults.append(f"SIGKILL execution at {t:.0f}s (killed {_clock(killed_at)}, health "
                                 f"{time.time() - killed_at:.1f} s later)")
        if t >= next_fault:
            report.faults.append(await _fault(sim, kite, rng, jumped))
            next_fault = t + rng.uniform(1.5, 3.5)
        for name, released_at in list(jumped):
            if t >= released_at:
                sim.admin("price", {"underlying": name, "price": None})
                jumped.remove((name, released_at))
        phase = close.phase
        close.step(t, await _look(sim, kite, journal, inv, t, up_since), inv)
        if close.phase != phase == "rolling":  # the second day: its listed contracts
            await _list_options(kite, inv, symbols)
        now = time.monotonic()
        for tok, at in feed.last.items():
            if now - at > FEED_GAP and not stale_alerts:
                inv.fail(t, f"the feed stopped silently: no tick of {tok} for {now - at:.0f}s and no feed_stale alert")
        missing = set(SYMBOLS.values()) - set(feed.last)
        if t > 15 and missing:
            inv.fail(t, f"no tick ever for {sorted(missing)}")
        await feed.moved_on()
    sim.reset_faults()
    for name, _ in jumped:
        sim.admin("price", {"underlying": name, "price": None})
    report.days = close.line()
    # kta closed its MIS book itself: the broker's close found none to square off (an adopted MIS fill would say so)
    taken = [(t["strategy_id"], t["tradingsymbol"], t["quantity"]) for t in journal.trades(USER)
             if t["order_id"].startswith("external:") and t["product"] == "MIS"]
    if taken:
        inv.fail(t, f"the broker squared off MIS positions kta's own square-off should have closed: {taken}")
    refused = sum(1 for s in journal.signals(USER) if s["code"] == "MIS_CUTOFF")
    report.days += f", {refused} MIS entries refused after the cutoff"


def _clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(at)) + f".{int(at % 1 * 1000):03d}"


async def _fault(sim, kite, rng: random.Random, jumped: list) -> str:
    kind = rng.choice(["reject", "partial", "latency", "drop_ws", "jump", "calm"])
    if kind == "reject":
        sim.faults(reject_next=1, reject_reason="RMS:Blocked for trading: risk check")
    elif kind == "partial":
        sim.faults(partial_then_cancel_next=1)
    elif kind == "latency":
        sim.faults(latency_ms=rng.choice([0, 150, 400]))
    elif kind == "drop_ws":
        sim.admin("drop_ws")
    elif kind == "jump":
        name = rng.choice(sorted(SYMBOLS))
        price = (await call(kite.ltp, f"NSE:{name}"))[f"NSE:{name}"].last_price
        jump = price * (1 + rng.choice([-1, 1]) * PRICE_JUMP_PCT / 100)
        sim.admin("price", {"underlying": name, "price": round(jump, 1)})
        jumped.append((name, time.monotonic() + 3.0))
        return f"jump {name} {price:.1f}->{jump:.1f}"
    return kind
