"""A live expiry through the real stack (nats-server, kite_sim with settlement on NIFTY's monthly expiry day, the
ticker, strategy and execution workers): ``HoldFuture`` holds the index's nearest future (NRML, its GTT at the
broker), ``HoldOptions`` a bought ITM call and OTM put of the same expiry. The sim is moved to its close, settles
(the future at the index's close, the call exercised, the put worthless) and opens the next day. Judged: kta's
book ends equal to the broker's; each settlement is journaled on the expiry day as an ``expiry:`` fill at the
settlement price, with its risk event, an ``external`` outcome with its reason and an alert; each strategy's
position equals the sum of its fills; no GTT or order is left working for a settled contract; the expiry day's
report (its realised P&L) equals the FIFO recomputation from the journal, and the broker's own cash result of
that day; and the future strategy, flat again, trades the next month's future."""

from __future__ import annotations

from dataclasses import dataclass, field

from execution_worker.journal import Journal
from execution_worker.main import amain as execution_main
from shared import messages as m
from shared import partition, subjects
from shared.broker_sessions import put_session, vault_for
from shared.kite.budget import SharedBudget
from shared.kite.client import KiteClient
from shared.trading.positions import FifoBook
from strategy_worker.main import amain as strategy_main
from strategy_worker.strategies import registry
from ticker_worker.main import amain as ticker_main
from tests.helpers import eventually, running, stack_settings, wait_health
from tests.simkit import login
from tests.system.broker import USER, call
from tests.system.holders import HoldFuture, HoldOptions
from tests.system.invariants import account_net, journal_positions, signed

NIFTY = 256265
SPOT = "NSE:NIFTY 50"
WORKING = {"OPEN", "TRIGGER PENDING", "OPEN PENDING", "MODIFY PENDING", "AMO REQ RECEIVED"}


@dataclass
class Expiry:
    day: str  # the expiry day the sim opened on
    violations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def check(self, ok: bool, what: str) -> None:
        if not ok:
            self.violations.append(what)


def fifo_realised(trades: list[dict]) -> int:
    """Σ realised of the trades, matched first in first out per (strategy, instrument): the journal's own rule,
    recomputed here from the rows."""
    books: dict[tuple[str, str], FifoBook] = {}
    total = 0
    for t in sorted(trades, key=lambda t: (t["fill_timestamp"], t["trade_id"])):
        book = books.setdefault((t["strategy_id"], t["tradingsymbol"]), FifoBook())
        total += sum(piece.pnl for piece in book.fill(signed(t), t["price"], t["fill_timestamp"]))
    return total


async def run(bus, sim, data_dir) -> Expiry:
    report = Expiry(sim.trading_day())
    sim.reset_faults()
    sim.admin("accounts/reset", {"user_id": USER})
    limits = m.RiskLimits(max_position_qty=1000, max_position_lots=10, max_orders_per_minute=400, max_open_orders=200,
                          max_daily_loss=10_000_000_00, max_exposure=10_000_000_000_00,
                          max_exposure_per_symbol=1_000_000_000_00, max_exposure_per_strategy=1_000_000_000_00)
    settings = stack_settings(bus.nc.connected_url.geturl(), data_dir, sim, seed_days=0, seed_interval="minute",
                              reconcile_interval=1.0, positions_interval=1.0, risk=limits, log_level="WARNING")
    token = login(sim)
    await put_session(bus, vault_for(settings), USER, sim.api_key, token)
    alerts: list[m.Alert] = []
    snapshots: list[m.PositionSnapshot] = []

    async def on_alert(a, msg):
        alerts.append(a)

    async def on_positions(s, msg):
        snapshots.append(s)

    await bus.subscribe(subjects.alerts(USER), m.Alert, on_alert)
    await bus.subscribe(subjects.positions(USER), m.PositionSnapshot, on_positions)
    registry.register(HoldFuture)
    registry.register(HoldOptions)
    kite = KiteClient(sim.api_key, token, root=sim.root, rate_limiter=SharedBudget(bus, sim.api_key))
    journal = Journal(data_dir / "journal.db")
    try:
        async with running(execution_main, settings), running(strategy_main, settings), \
                running(ticker_main, settings):
            for service in ("strategy", "ticker", "execution"):
                await wait_health(bus, service, timeout=60)
            for sid, cls in (("hold-fut", HoldFuture), ("hold-opt", HoldOptions)):
                added = await bus.request(subjects.cmd(USER, "strategy", "add"), m.AddStrategy(
                    strategy=cls.name, tokens=[NIFTY], strategy_id=sid, params={"lots": 1, "intraday": False}))
                assert isinstance(added, m.Ok), added
            started = await bus.gather(subjects.cmd(USER, "live", "start"), m.StartLive(tokens=[NIFTY]),
                                       expect={"ticker", "strategy", "execution"}, timeout=30)
            assert all(isinstance(r, m.Ok) for r in started.values()), started
            await _expire(bus, sim, kite, journal, report, alerts, snapshots)
    finally:
        registry.unregister(HoldFuture.name)
        registry.unregister(HoldOptions.name)
        sim.admin("price", {"underlying": "NIFTY", "price": None})
        await kite.aclose()
    return report


def held(journal, strategy_id: str) -> dict[str, int]:
    return {s: q for (sid, s), q in journal_positions(journal.trades(USER)).items() if sid == strategy_id and q}


async def _expire(bus, sim, kite, journal, report: Expiry, alerts, snapshots) -> None:
    day = report.day
    fut = await eventually(lambda: held(journal, "hold-fut") or None, timeout=60, what="the future bought")
    opts = await eventually(lambda: (h := held(journal, "hold-opt")) and len(h) == 2 and h or None, timeout=60,
                            what="the call and the put bought")
    [(dec, qty)] = fut.items()
    listed = {i.tradingsymbol: i for i in await call(kite.instruments, "NFO")}
    call_, put = sorted(opts, key=lambda s: listed[s].instrument_type)  # CE, PE

    async def gtt_of(symbol):
        return [g for g in await call(kite.gtts) if g.status == "active" and g.condition.tradingsymbol == symbol]

    await eventually(lambda: gtt_of(dec), what=f"{dec}'s GTT at the broker")
    pin = listed[call_].strike + 100  # the close pinned above both strikes: the call exercised, the put worthless
    before = (await call(kite.margins, "equity")).available.opening_balance
    sim.admin("price", {"underlying": "NIFTY", "price": pin})
    sim.advance_to(15, 29, 50)
    await eventually(lambda: sim.get("/sim/clock").json()["listed_day"] != day, what="the next trading day listed")
    after = (await call(kite.margins, "equity")).available.opening_balance
    close = m.to_paise((await call(kite.ohlc, SPOT))[SPOT].ohlc.close)  # the index's close on the expiry day

    settled = await eventually(lambda: (s := [t for t in journal.trades(USER) if t["order_id"].startswith("expiry:")])
                               and len(s) == 3 and s or None, timeout=30, what="the three settlements journaled")
    by_symbol = {t["tradingsymbol"]: t for t in settled}
    report.check(set(by_symbol) == {dec, *opts}, f"settled {sorted(by_symbol)}, held {dec} and {sorted(opts)}")
    strikes = {s: m.to_paise(listed[s].strike) for s in opts}
    expect = {dec: ("SELL", qty, close), call_: ("SELL", opts[call_], max(0, close - strikes[call_])),
              put: ("SELL", opts[put], max(0, strikes[put] - close))}
    for symbol, t in by_symbol.items():
        report.check((t["transaction_type"], t["quantity"], t["price"]) == expect[symbol],
                     f"{symbol} settled {t['transaction_type']} {t['quantity']} at {t['price']}, not {expect[symbol]}")
        report.check(t["day"] == day and t["fill_timestamp"] == f"{day} 15:30:00",
                     f"{symbol}'s settlement dated {t['fill_timestamp']} (day {t['day']}), not the expiry day {day}")
    codes = {e["code"] for e in journal.risk_events(USER)}
    report.check({"EXPIRY_SETTLED", "EXPIRY_EXERCISED", "EXPIRY_EXPIRED"} <= codes, f"risk events: {sorted(codes)}")
    told = await eventually(lambda: (o := {(r["strategy_id"], r["tradingsymbol"]): r for r in journal.outcomes(USER)
                                           if r["kind"] == "external"}) and len(o) == 3 and o or None,
                            what="the strategies told")
    for (sid, symbol), o in told.items():
        report.check(o["position"] == 0 and o["reason"].startswith("expiry settlement"),
                     f"{sid} told of {symbol}: position {o['position']}, reason {o['reason']!r}")
    await eventually(lambda: len({a.key for a in alerts if a.kind == "external_fill"}) >= 3, what="three alerts")

    # the roll: flat again, the future strategy buys the next month's
    jan = await eventually(lambda: [s for s in held(journal, "hold-fut") if s != dec] or None, timeout=30,
                           what="the next month's future bought")
    report.notes.append(f"rolled {dec} -> {jan[0]}")
    late = [r for r in journal.orders(USER) if r["tradingsymbol"] == dec and r["day"] > day]
    report.check(not late, f"orders on {dec} after its expiry: {[(r['kind'], r['state']) for r in late]}")
    await eventually(lambda: gtt_of(jan[0]), what=f"{jan[0]}'s GTT")

    # nothing left protecting (or working on) what was settled
    working = [o for o in await call(kite.orders) if o.tradingsymbol in by_symbol and o.status in WORKING]
    report.check(not working, f"orders left working on settled contracts: {working}")
    report.check(not await gtt_of(dec), f"{dec}'s GTT still active after its settlement")
    guards = [p for p in journal.protections(USER) if p.tradingsymbol in by_symbol and p.gtt_ids]
    report.check(not guards, f"protection kept for settled contracts: {guards}")
    await eventually(lambda: snapshots and snapshots[-1].protection and snapshots[-1].exchange_ts, what="a snapshot")
    shown = {p.tradingsymbol: p.state for p in snapshots[-1].protection}
    report.check(not set(shown) & set(by_symbol), f"the dashboard still lists settled contracts: {shown}")

    # the expiry day's P&L: the report = FIFO from the journal = the broker's cash result of the day
    fifo = fifo_realised(journal.trades(USER, day))
    summary = await eventually(lambda: journal.daily_summary(USER, day), what=f"the report of {day}")
    broker_day = m.to_paise(after) - m.to_paise(before)
    report.notes.append(f"{day}: report {summary['realised_pnl']}, FIFO {fifo}, broker {broker_day} (paise)")
    report.check(summary["realised_pnl"] == fifo == broker_day,
                 f"{day}'s P&L: report {summary['realised_pnl']}, FIFO from the journal {fifo}, broker {broker_day}")

    # the book equals the broker's, and each strategy's own book the sum of its fills
    async def books_agree():
        broker = {(p.tradingsymbol, p.product): p.quantity for p in (await call(kite.positions)).net if p.quantity}
        return (broker,) if account_net(journal.trades(USER)) == broker else None

    try:
        await eventually(books_agree, timeout=15, what="kta's book = the broker's")
    except AssertionError:
        broker = {(p.tradingsymbol, p.product): p.quantity for p in (await call(kite.positions)).net if p.quantity}
        report.check(False, f"kta's book {account_net(journal.trades(USER))} != the broker's {broker}")

    async def believed():
        consumer = await bus.js.consumer_info(subjects.STREAM_OUTCOMES, f"strategy-outcomes-p{partition.of(USER)}")
        if consumer.num_pending or consumer.num_ack_pending:
            return None
        listed = await bus.request(subjects.cmd(USER, "strategy", "list"), m.ListStrategies(), timeout=10)
        names = {t["instrument_token"]: t["tradingsymbol"] for t in journal.trades(USER)}
        return ({(r["strategy_id"], names.get(int(tok), tok)): q for r in listed.data
                 for tok, q in r["position"].items() if q},)

    (books,) = await eventually(believed, timeout=30, what="the strategies' books")
    journaled = {k: q for k, q in journal_positions(journal.trades(USER)).items() if q}
    report.check(books == journaled, f"strategies believe {books}, their fills sum to {journaled}")
