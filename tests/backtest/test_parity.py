"""Parity with live: one morning of the same minute candles through the live paper stack (kite_sim replaying
them, the real ticker, strategy and execution workers on NATS) and through the backtest engine gives the
same signals and the same orders, fill prices within the fill model's tolerance.

The candles have no wicks and each opens at the previous close, so the live bars built from the sim's
ticks are exactly the candles: kite_sim draws a candle as open → low → high → close with knots a third of
the minute apart, so the price rests at the open for the first third and at the close for the last, and
its ticker (a tick every 0.25 s, 10 sim-seconds at speed 40: half the 20 s it must not exceed) samples
both. The first 20 minutes are flat, so the live strategy — which starts a few minutes into the session —
and the engine enter the moving part with the same indicator state (ATR(14) warm on flat bars)."""

from __future__ import annotations

from datetime import datetime

import httpx
import numpy as np

from shared import ist, natsd
from shared import messages as m
from shared import subjects
from shared.candles.instruments import InstrumentArchive
from shared.candles.store import Candles, CandleStore
from shared.fills import PARITY_TOLERANCE_TICKS
from shared.broker_sessions import put_session, vault_for
from strategy_worker.backtest.job import execute
from tests.backtest.kit import INFY, START, candles
from tests.helpers import eventually, stack_settings
from tests.simkit import login, start_sim
from tests.stackkit import workers

USER = "DEMO01"
FLAT, MOVING = 20, 25  # minutes
TICK = 5
SPEED = 40
SEED = 50  # a morning whose crosses are minutes apart: an entry, then two reversals
# stops and targets ten ATRs away: the order sequence then depends on the bars alone, not on how long the
# live orders took to travel (on a loaded machine a second of latency is 40 sim-seconds, most of a bar);
# the fill model's stop and target rules are checked bar by bar in test_engine.py
PARAMS = {"fast": 3, "slow": 8, "quantity": 1, "atr_stop": 10, "reward": 10}


def morning(seed: int = SEED) -> Candles:
    """25 flat minutes, then 35 moving ones: no wicks, each candle opening at the previous close."""
    moving = candles(INFY.instrument_token, [START], seed=seed, per_day=MOVING)
    close = moving.close
    first = float(moving.open[0])
    o = np.concatenate((np.full(FLAT, first), [first], close[:-1]))
    c = np.concatenate((np.full(FLAT, first), close))
    t0 = int(datetime(START.year, START.month, START.day, 9, 15, tzinfo=ist.IST).timestamp())
    n = FLAT + MOVING
    return Candles(t0 + 60 * np.arange(n, dtype=np.int64), o, np.maximum(o, c), np.minimum(o, c), c,
                   np.full(n, 1000, dtype=np.int64), np.zeros(n, dtype=np.int64))


def replay_csv(path, c: Candles):
    rows = [f"INFY,{ist.stamp(t)},{o:.2f},{h:.2f},{lo:.2f},{cl:.2f},{v}"
            for t, o, h, lo, cl, v in zip(c.ts.tolist(), c.open.tolist(), c.high.tolist(), c.low.tolist(),
                                          c.close.tolist(), c.volume.tolist())]
    path.write_text("symbol,timestamp,open,high,low,close,volume\n" + "\n".join(rows) + "\n")
    return path


async def test_one_morning_live_and_backtested_agree(bus, data_dir, tmp_path):
    c = morning()
    port = natsd.free_port()
    root = f"http://127.0.0.1:{port}"
    settings = stack_settings(bus.nc.connected_url.geturl(), data_dir, None, seed_days=0, seed_interval="minute",
                              kite_root=root, kite_ws_root=f"ws://127.0.0.1:{port}/ws",
                              kite_login_url=f"{root}/connect/login")
    signals: list = []
    outcomes: list = []

    async def on_signal(sig, msg):
        signals.append(sig)

    async def on_outcome(o, msg):
        outcomes.append(o)

    await bus.subscribe(subjects.signals(USER), m.AnySignal, on_signal)
    await bus.subscribe(subjects.outcomes(USER), m.StrategyOutcome, on_outcome)
    end = int(c.ts[-1]) + 60
    async with workers(settings, bus):  # the stack first: the replayed clock starts with the sim
        sim = start_sim(tmp_path, speed=SPEED, port=port,
                        extra=("--replay", str(replay_csv(tmp_path / "INFY.csv", c))))
        try:
            await put_session(bus, vault_for(settings), USER, sim.api_key, login(sim))
            ok = await bus.request(subjects.cmd(USER, "strategy", "add"), m.AddStrategy(
                strategy="ema_crossover", params=PARAMS, tokens=[INFY.instrument_token], strategy_id="ema"))
            assert isinstance(ok, m.Ok), ok
            started = await bus.gather(subjects.cmd(USER, "live", "start"),
                                       m.StartLive(tokens=[INFY.instrument_token], mode=m.TickMode.FULL),
                                       expect={"ticker", "strategy", "execution"}, timeout=20)
            assert all(isinstance(r, m.Ok) for r in started.values()), started
            clock = lambda: httpx.get(f"{sim.root}/sim/clock", timeout=5).json()["epoch"]  # noqa: E731
            assert clock() < int(c.ts[FLAT - 15]), "the stack took too long to start: it missed the flat warm-up"
            await eventually(lambda: clock() >= end, timeout=(end - int(c.ts[0])) / SPEED + 60,
                             what="the replayed morning")

            async def orders() -> list[dict]:
                return (await bus.request(subjects.cmd(USER, "execution", "orders"), m.GetOrders(day="all"))).data

            async def decided() -> bool:  # every signal placed (or refused) by the execution worker
                placed = [o for o in await orders() if o["kind"] in ("entry", "exit")]
                return len(placed) + sum(o.kind == "refused" for o in outcomes) >= len(signals)

            await eventually(decided, timeout=30, what="the execution worker's orders for every signal")
            live_orders = await orders()
        finally:
            sim.stop()

    # the same candles through the engine
    store = CandleStore(data_dir / "bt" / "candles")
    store.write(INFY.instrument_token, "minute", c)
    InstrumentArchive(data_dir / "bt" / "candles").save(START, [INFY])
    spec = m.BacktestSpec(strategy="ema_crossover", symbols=["INFY"], start=START, end=START, interval="minute",
                          params=PARAMS, warmup_bars=0)
    out = execute(spec, data_dir / "bt")
    ours = [o for o in out["parts"]["orders"] if o["status"] == "COMPLETE"]
    cutoff = ist.stamp(int(c.ts[-1]))  # the last bar's signals fill after the range in both
    ours = [o for o in ours if o["fill_time"] < cutoff]

    live = sorted((o for o in live_orders if o.get("status") == "COMPLETE" and o.get("kind") in
                   ("entry", "exit", "stop_loss", "target")), key=lambda o: o["exchange_timestamp"] or "")
    live = [o for o in live if (o["exchange_timestamp"] or "") < cutoff]
    live_signals = [(s.intent, s.transaction_type.value, s.quantity) for s in signals
                    if ist.stamp(s.tick_ts) < cutoff]
    our_signals = [(o["kind"], o["side"], o["quantity"]) for o in ours if o["kind"] in ("entry", "exit")]
    assert our_signals, "the morning should make the strategy trade"
    assert live_signals == our_signals, (live_signals, our_signals, [
        (o["kind"], o["status"], o["status_message"], o["order_timestamp"]) for o in live_orders])  # the same signals
    assert [(o["kind"], o["transaction_type"], o["quantity"]) for o in live] == \
        [(o["kind"], o["side"], o["quantity"]) for o in ours], (  # ... and the same orders
        [(o["kind"], o["status"], o["status_message"]) for o in live_orders],
        [(o.kind, o.code, o.reason) for o in outcomes if o.kind in ("refused", "rejected")])
    bars = {int(t): (int(round(o * 100)), int(round(h * 100)), int(round(lo * 100)), int(round(cl * 100)))
            for t, o, h, lo, cl in zip(c.ts.tolist(), c.open.tolist(), c.high.tolist(), c.low.tolist(),
                                       c.close.tolist())}
    for lv, bt in zip(live, ours):
        at, live_at = int(ist.parse(bt["fill_time"])) // 60 * 60, int(ist.parse(lv["exchange_timestamp"])) // 60 * 60
        # the live order travels through NATS, the execution worker and HTTP: at speed 40 a second of that
        # is 40 sim-seconds, so it may fill some bars after the engine's (never before)
        assert live_at >= at, (lv, bt)
        span = [bars[t] for t in range(at, live_at + 60, 60) if t in bars]
        moved = max(b[1] for b in span) - min(b[2] for b in span)
        # the fill model's tolerance, plus what the price moved while the order travelled
        assert abs(lv["average_price"] - bt["fill_price"]) <= PARITY_TOLERANCE_TICKS * TICK + moved, (lv, bt)
