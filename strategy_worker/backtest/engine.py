"""The backtest engine: the live strategy classes (through the same ``StrategyRunner`` the strategy worker
drives) on historical bars, one deterministic event loop.

For each bar of an instrument, in time order:

1. its open is the instrument's first price after the previous bar closed — that bar goes to the strategy
   now (``on_bar``), exactly when the live worker hears of it (the first tick after the bar), and any
   signal goes to the simulated desk (``desk.py``: live risk, live order plan) and fills at this open ±
   the fill model's spread;
2. resting stop-losses and targets are tested against the bar's synthesised path (``shared/fills.py``);
3. the close marks the positions to market and the equity curve advances.

A strategy that needs ticks (``on_tick``) gets four per bar, one at each point of the same path
(``shared.fills.bar_path``: open, low, high, close on a rising or flat bar; open, high, low, close on a falling
one), each a quarter of the bar apart, its signals filled at that point's price. At each day's end open MIS positions are squared off at the close (Kite's auto square-off)
and day orders cancelled; a kill switch that HALTED is reset at the next open (the trader's manual reset).
What every signal became reaches the strategy as live: ``StrategyOutcome``s through ``runner.apply``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from shared import ist
from shared.candles.store import CandleStore
from shared.fills import bar_path
from shared.kite.models import Instrument
from shared.messages import INTERVAL_SECONDS, BacktestSpec, Bar, RiskLimits, Tick
from shared.trading.greeks import spot_key
from strategy_worker.backtest import expiry
from strategy_worker.backtest.desk import Desk
from strategy_worker.backtest.feed import chunks
from strategy_worker.backtest.results import CURVE_POINTS, Recorder
from strategy_worker.runner import StrategyRunner
from strategy_worker.strategies import registry
from strategy_worker.strategies.context import StrategyContext

Progress = Callable[[float, int], None]  # (fraction done, bars so far)
MAX_CHAIN = 8  # signals a hook may answer with, per outcome, before the loop stops following


class BacktestError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field

    def __reduce__(self):  # crosses process boundaries (the job pool) intact
        return type(self), (self.field, str(self))


class Cancelled(Exception):
    """The run was cancelled; nothing of it is kept."""


class PriceTicks(Mapping):
    """The backtest's last prices as the strategies' ``last_ticks`` (a Tick made when asked for), so code
    that reads ticks — an option strategy's ``prices()``, ``last_tick`` — sees the bars' prices."""

    __slots__ = ("price",)

    def __init__(self, price: dict[int, float]) -> None:
        self.price = price

    def __getitem__(self, token: int) -> Tick:
        return Tick(token, "ltp", True, self.price[token])

    def __contains__(self, token: object) -> bool:
        return token in self.price

    def __iter__(self) -> Iterator[int]:
        return iter(self.price)

    def __len__(self) -> int:
        return len(self.price)


class BacktestContext(StrategyContext):
    """The strategies' view of the market in a backtest: prices from the bars, deterministic ids."""

    def __init__(self, instruments: list[Instrument], run_id: str) -> None:
        self.price: dict[int, float] = {}
        super().__init__(instruments, PriceTicks(self.price))
        self.now = 0
        self.clock = lambda: self.now
        self._id_prefix = run_id

    def ltp(self, token: int) -> float | None:
        return self.price.get(token)


@dataclass
class Setup:
    runner: StrategyRunner
    ctx: BacktestContext
    tokens: list[int]  # the symbols, in the order given
    feed_tokens: list[int]  # everything whose bars are needed (a symbol and what it trades through)
    instruments: dict[int, Instrument]


def resolve(spec: BacktestSpec, instruments: list[Instrument], run_id: str, user_id: str) -> Setup:
    """Params, symbols and the runner of a spec; a bad one raises BacktestError naming the field."""
    try:
        cls = registry.get(spec.strategy)
        params = registry.validate_params(spec.strategy, spec.params)
    except registry.ParamsError as e:
        raise BacktestError("strategy" if e.field == "strategy" else f"params.{e.field}", str(e)) from None
    if spec.end < spec.start:
        raise BacktestError("end", f"end {spec.end} is before start {spec.start}")
    ctx = BacktestContext(instruments, run_id)
    tokens, unknown = [], []
    for sym in spec.symbols:
        inst = ctx.by_symbol.get(sym if ":" in sym else f"NSE:{sym}") or ctx.by_symbol.get(f"NSE:{sym}")
        (tokens.append(inst.instrument_token) if inst else unknown.append(sym))
    if unknown:
        raise BacktestError("symbols", f"unknown symbol(s): {', '.join(unknown)}")
    runner = StrategyRunner(cls, f"bt-{spec.strategy}", user_id, params, tokens, ctx,
                            now_ns=lambda: ctx.now * 1_000_000_000)
    feed = list(dict.fromkeys([*tokens, *sorted(runner.required_tokens()), *_rolls(ctx, tokens, spec),
                               *_spots(ctx, tokens)]))
    return Setup(runner, ctx, tokens, feed, {t: ctx.by_token[t] for t in feed if t in ctx.by_token})


def _rolls(ctx: StrategyContext, tokens: list[int], spec: BacktestSpec) -> list[int]:
    """The futures an index symbol is traded through over the range (``ctx.tradable``: its nearest future): each
    in turn as the one before expires, up to the one still trading at the range's end."""
    out: list[int] = []
    for t in tokens:
        if ctx.by_token[t].segment != "INDICES":
            continue
        name = ctx.underlying_name(t)
        futures = sorted((i for i in ctx.instruments if i.name == name and i.instrument_type == "FUT" and i.expiry
                          and i.expiry >= spec.start), key=lambda i: i.expiry)
        for f in futures:
            out.append(f.instrument_token)
            if f.expiry >= spec.end:
                break
    return out


def _spots(ctx: StrategyContext, tokens: list[int]) -> list[int]:
    """The underlying (index or stock) of each future or option backtested on its own: a contract held into its
    expiry settles against the underlying's close (expiry.py), so its candles are loaded (and fetched) too."""
    out = []
    for t in tokens:
        inst = ctx.by_token[t]
        if inst.instrument_type in ("FUT", "CE", "PE") and (spot := ctx.by_symbol.get(spot_key(inst.name))):
            out.append(spot.instrument_token)
    return out


class Backtest:
    def __init__(self, spec: BacktestSpec, instruments: list[Instrument], store: CandleStore, *,
                 run_id: str = "bt", user_id: str = "BACKTEST", progress: Progress | None = None,
                 cancel: threading.Event | None = None) -> None:
        self.spec = spec
        self.store = store
        self.setup = resolve(spec, instruments, run_id, user_id)
        self.progress = progress
        self.cancel = cancel
        self.start, self.end = _bounds(spec)
        expected = max(1, (self.end - self.start) // 86400 * 375 * 60 // _seconds(spec.interval))
        self.rec = Recorder(spec.capital, curve_step=max(1, expected * len(self.setup.tokens) // CURVE_POINTS))
        self.rec.peak_ts = self.start
        self.desk = Desk(user_id, self.setup.instruments, self.rec, self.setup.ctx.price, spec.risk or RiskLimits(),
                         spec.slippage_ticks)
        ctx = self.setup.ctx
        self.desk.underlyings = {ctx.underlying_name(t): t for t in self.setup.feed_tokens
                                 if t in ctx.by_token and ctx.by_token[t].instrument_type not in ("FUT", "CE", "PE")}
        self._next_expiry = min((i.expiry for i in ctx.instruments if i.expiry), default=None)
        self.unfilled = 0  # signals of the last bars, after which no price came
        self.elapsed = 0.0

    def run(self) -> Recorder:
        started = time.perf_counter()
        self._check_data()
        self._warm_up()
        self._loop()
        self.elapsed = time.perf_counter() - started
        return self.rec

    # ---- set-up -------------------------------------------------------------------------------

    def _check_data(self) -> None:
        empty = [self.setup.instruments[t].tradingsymbol for t in self.setup.tokens
                 if not self.store.has_data(t, self.spec.interval, self.start, self.end)]
        if empty:
            raise BacktestError("start", f"no {self.spec.interval} candles for {', '.join(empty)} from "
                                         f"{self.spec.start} to {self.spec.end} (kta candles refresh fetches them)")

    def _warm_up(self) -> None:
        if not self.spec.warmup_bars:
            return
        runner, interval = self.setup.runner, self.spec.interval
        for t in self.setup.tokens:
            c = self.store.last(t, interval, self.start, self.spec.warmup_bars)
            for row in zip(c.ts.tolist(), c.open.tolist(), c.high.tolist(), c.low.tolist(), c.close.tolist(),
                           c.volume.tolist(), c.oi.tolist()):
                runner.warm_up(Bar(t, interval, *row))

    # ---- the loop -----------------------------------------------------------------------------

    def _loop(self) -> None:
        s = self.setup
        runner, ctx, desk, rec = s.runner, s.ctx, self.desk, self.rec
        interval, capital, tracker = self.spec.interval, self.spec.capital, desk.tracker
        price, wake, open_tokens, on_bar = ctx.price, desk.wake, desk.open_tokens, runner.on_bar
        ticks = s.runner.cls.wants_ticks()
        seconds = _seconds(interval)
        watched = set(s.tokens)
        last: dict[int, Bar] = {}  # a watched symbol's last bar: it goes to the strategy at the next one's open
        day_end = prev_ts = 0
        total = self.end - self.start + 1
        step = rec.curve_step
        n = in_market = 0
        equity = capital
        for tok_l, ts_l, o_l, h_l, l_l, c_l, v_l, oi_l in chunks(self.store, s.feed_tokens, interval, self.start,
                                                                 self.end):
            if self.cancel is not None and self.cancel.is_set():
                raise Cancelled()
            for tok, ts, o, h, lo, c, v, oi in zip(tok_l, ts_l, o_l, h_l, l_l, c_l, v_l, oi_l):
                if ts >= day_end:
                    if day_end:
                        self._day_end(prev_ts + seconds - 1)
                    day_end = _next_day(ts)
                    self._new_day(ist.now(ts).date())
                desk.now = ctx.now = prev_ts = ts
                price[tok] = o
                if tok in watched:
                    prev = last.get(tok)
                    if prev is not None:
                        out = on_bar(prev)
                        if out:
                            self._send(out)
                    if ticks:
                        self._ticks(tok, ts, o, h, lo, c)
                    last[tok] = Bar(tok, interval, ts, o, h, lo, c, v, oi)
                if tok in wake and not (ticks and tok in watched):
                    low, high = wake[tok]
                    if lo <= low or h >= high:
                        self._apply(desk.on_path(tok, bar_path(int(o * 100 + 0.5), int(h * 100 + 0.5),
                                                               int(lo * 100 + 0.5), int(c * 100 + 0.5))))
                price[tok] = c
                if open_tokens:
                    in_market += 1
                    if tok in open_tokens:
                        desk.mark(tok, int(c * 100 + 0.5))
                    equity = capital + tracker.realised + tracker.unrealised - rec.charges
                    rec.equity(ts, equity)
                n += 1
                if n % step == 0:  # a point of the intraday curve
                    if not open_tokens:  # flat: what is realised, net of charges
                        equity = capital + tracker.realised - rec.charges
                    step = rec.sample(ts, equity)
            rec.bars, rec.bars_in_market = n, in_market
            if self.progress is not None:
                self.progress(min(1.0, (ts_l[-1] - self.start + 1) / total), n)
        for tok, bar in last.items():  # the last bars: their signals would fill after the range
            self.unfilled += len(on_bar(bar))
        if day_end:
            self._day_end(prev_ts + seconds - 1)

    def _new_day(self, day: date) -> None:
        """The day's instrument list: a contract expired before it is no longer listed (Kite's dump drops it), so
        the strategies trade the next (``ctx.nearest_future``) and none of them orders it again."""
        self.desk.new_day(day.isoformat())
        if self._next_expiry is not None and self._next_expiry < day:
            ctx = self.setup.ctx
            ctx.set_instruments(expiry.listed(ctx.instruments, day))
            self._next_expiry = min((i.expiry for i in ctx.instruments if i.expiry), default=None)

    def _ticks(self, tok: int, ts: int, o: float, h: float, lo: float, c: float) -> None:
        """Four ticks along the bar's path; resting orders tested on each leg of it."""
        step = _seconds(self.spec.interval) // 4
        path = (o, lo, h, c) if c >= o else (o, h, lo, c)
        ctx, desk = self.setup.ctx, self.desk
        prev = int(o * 100 + 0.5)
        for i, price in enumerate(path):
            p = int(price * 100 + 0.5)
            desk.now = ctx.now = ts + i * step
            if i and tok in desk.wake:
                self._apply(desk.on_path(tok, (prev, p)))
            ctx.price[tok] = price
            self._send(self.setup.runner.on_tick(Tick(tok, "full", True, price, exchange_timestamp=ts + i * step)))
            prev = p

    def _send(self, signals: list, depth: int = 0) -> None:
        for sig in signals:
            self._apply(self.desk.submit(sig), depth)

    def _apply(self, outcomes: list, depth: int = 0) -> None:
        runner = self.setup.runner
        for out in outcomes:
            more = runner.apply(out)
            if more and depth < MAX_CHAIN:
                self._send(more, depth + 1)

    def _day_end(self, ts: int) -> None:
        self.desk.now = ts
        self._apply(self.desk.end_of_day())
        tracker = self.desk.tracker
        equity = self.spec.capital + tracker.realised + tracker.unrealised - self.rec.charges
        self.rec.equity(ts, equity)
        self.rec.day_close(ist.day(ts), equity)
        if self.desk.risk.halted:
            self.desk.risk.reset("backtest: the trader resets the kill switch before the next open")


def _seconds(interval: str) -> int:
    return INTERVAL_SECONDS[interval]


def _bounds(spec: BacktestSpec) -> tuple[int, int]:
    a = datetime.combine(spec.start, datetime.min.time(), ist.IST)
    b = datetime.combine(spec.end + timedelta(days=1), datetime.min.time(), ist.IST)
    return int(a.timestamp()), int(b.timestamp()) - 1


def _next_day(ts: int) -> int:
    return ist.midnight(ts) + ist.DAY_SECONDS
