"""Option strategies in a backtest (iron condor, straddle / strangle, debit spreads): the underlying's bars
drive the strategy exactly as live; the contracts it trades are the ones that existed that day, priced
by their own candles.

Day by day:

1. **Contracts of the day.** The instrument snapshot describing the day (``shared/candles/instruments.py``;
   expired contracts are not in today's list) becomes the strategies' instrument list, so ``chain()``
   finds that day's expiries. The contracts loaded are what the strategy follows live — its
   ``required_tokens`` (the strikes around the spot, its legs) at every strike the underlying's range
   that day crosses — plus whatever is held. Their candles come from the candle store
   (``contract_spans`` tells ``kta backtest --fetch`` what to fetch while Kite still lists them).
2. **Minute by minute** (every bar that starts at that time, the underlying first): prices move to the
   bars' opens; the underlying's previous bar goes to the strategy (``on_bar``, as live hears of it at
   the first tick after it); its SignalGroups are placed as live (``groups.py``: a leg fills only on a
   contract that traded that minute); then prices move to the closes and positions are marked.
3. **At the close**, a contract expiring that day that is still held is settled as any backtest settles it
   (``expiry.py``, from ``Desk.end_of_day``): in cash at its intrinsic value against the underlying's close, long
   in-the-money options paying STT on exercise; then the day ends as for any backtest.
"""

from __future__ import annotations

import itertools
from datetime import date

import numpy as np

from shared import ist
from shared.candles.instruments import InstrumentArchive
from shared.candles.store import Candles, months_between
from shared.fills import bar_path
from shared.messages import Bar
from strategy_worker.backtest.engine import Backtest, BacktestError, Cancelled, _seconds
from strategy_worker.backtest.feed import merge, month_span
from strategy_worker.runner import StrategyRunner
from strategy_worker.strategies.context import StrategyContext


def day_contracts(runner: StrategyRunner, ctx: StrategyContext, ranges: dict[int, tuple[float, float]]) -> set[int]:
    """The option contracts the strategy would follow on a day where each underlying ``token`` traded
    within ``(low, high)``: ``required_tokens`` with the spot at each end of the range and at every
    strike between (the live worker follows the strikes around wherever the spot is)."""
    out: set[int] = set()
    for token, (low, high) in ranges.items():
        inst = runner.instances.get(token)
        chain = inst.chain() if inst is not None and hasattr(inst, "chain") else None
        spots = {low, high} | {s.strike for s in (chain.strikes if chain else ()) if low < s.strike < high}
        saved = ctx.price.get(token)
        for spot in sorted(spots):
            ctx.price[token] = spot
            out |= runner.required_tokens()
        if saved is None:
            ctx.price.pop(token, None)
        else:
            ctx.price[token] = saved
    return out - set(ranges)


def by_day(c: Candles) -> dict[date, Candles]:
    days = (c.ts + ist.OFFSET_SECONDS) // ist.DAY_SECONDS  # ist.day_number of every candle
    cuts = np.flatnonzero(np.diff(days)) + 1
    bounds = [0, *cuts.tolist(), len(c)]
    return {ist.now(int(c.ts[a])).date(): c.slice(a, b) for a, b in itertools.pairwise(bounds) if b > a}


class OptionBacktest(Backtest):
    """``archive``: the daily instrument snapshots (None: the list given serves every day)."""

    def __init__(self, *args, archive: InstrumentArchive | None = None, **kw) -> None:
        super().__init__(*args, **kw)
        self.archive = archive
        ctx = self.setup.ctx
        self.names = self.desk.underlyings  # underlying name -> its token
        self.option_days = 0  # days on which any contract had candles
        self.days_run = 0
        self.last: dict[int, Bar] = {}  # the underlyings' last bars
        self._month, self._cache = "", {}  # the contracts' candles of the month being run

    # ---- input --------------------------------------------------------------------------------

    def _check_data(self) -> None:
        """Beyond the underlying's candles: intraday bars (the entry window and the time exit are minutes of
        the day) and an underlying with option contracts in the instrument list."""
        if self.spec.interval == "day":
            raise BacktestError("interval", "an option strategy runs on intraday bars (minute to 60minute): its "
                                            "entry window and time exit are minutes of the day")
        ctx = self.setup.ctx
        listed = {i.name for i in ctx.by_token.values() if i.instrument_type in ("CE", "PE")}
        bare = [ctx.by_token[t].tradingsymbol for t in self.setup.tokens if ctx.underlying_name(t) not in listed]
        if bare:
            raise BacktestError("symbols", f"no option contracts of {', '.join(bare)} in the instrument list: an "
                                           "option strategy trades an index or stock with options (NIFTY 50, "
                                           "NIFTY BANK, RELIANCE, ...)")
        super()._check_data()

    # ---- the loop -----------------------------------------------------------------------------

    def _loop(self) -> None:
        total = self.end - self.start + 1
        for month in months_between(self.start, self.end):
            a, b = month_span(month, self.start, self.end)
            split = {t: by_day(self.store.read(t, self.spec.interval, a, b)) for t in self.setup.tokens}
            for day in sorted({d for days in split.values() for d in days}):
                if self.cancel is not None and self.cancel.is_set():
                    raise Cancelled()
                self._day({t: days[day] for t, days in split.items() if day in days}, day)
                if self.progress is not None:
                    self.progress(min(1.0, (self.desk.now - self.start + 1) / total), self.rec.bars)
        for bar in self.last.values():  # the last bars: their signals would fill after the range
            self.unfilled += len(self.setup.runner.on_bar(bar))
        if self.days_run and not self.option_days:
            names = ", ".join(sorted(self.names))
            raise BacktestError("start", f"no {self.spec.interval} candles of any {names} option from "
                                         f"{self.spec.start} to {self.spec.end}: kta backtest --fetch stores them "
                                         "while Kite lists the contracts (expired ones only from a CSV import)")

    def _day(self, bars: dict[int, Candles], day: date) -> None:
        s, desk, rec = self.setup, self.desk, self.rec
        runner, ctx, price = s.runner, s.ctx, s.ctx.price
        first = min(int(c.ts[0]) for c in bars.values())
        desk.now = ctx.now = first
        desk.new_day(day.isoformat())
        self._instruments(day)
        ranges = {t: (float(c.low.min()), float(c.high.max())) for t, c in bars.items()}
        contracts = day_contracts(runner, ctx, ranges) | {t for t in desk.open_tokens if t not in bars}
        start = ist.midnight(first)
        parts = [(t, c) for t, c in bars.items()]
        for t in sorted(contracts):
            c = self._candles(t, start)
            if len(c):
                parts.append((t, c))
        self.option_days += len(parts) > len(bars)
        self.days_run += 1
        tok_l, ts_l, o_l, h_l, l_l, c_l, v_l, oi_l = merge(parts)
        watched, wake, traded, open_tokens, last = set(s.tokens), desk.wake, desk.traded, desk.open_tokens, self.last
        interval, capital, tracker = self.spec.interval, self.spec.capital, desk.tracker
        n, size = 0, len(ts_l)
        while n < size:
            ts, j = ts_l[n], n
            while j < size and ts_l[j] == ts:
                j += 1
            desk.now = ctx.now = ts
            traded.clear()
            for k in range(n, j):
                price[tok_l[k]] = o_l[k]
                traded.add(tok_l[k])
            for k in range(n, j):
                prev = last.get(tok_l[k]) if tok_l[k] in watched else None
                if prev is not None:
                    self._send(runner.on_bar(prev))
            for k in range(n, j):
                tok = tok_l[k]
                if tok in wake:  # single-instrument signals' stop-losses, as in any backtest
                    low, high = wake[tok]
                    if l_l[k] <= low or h_l[k] >= high:
                        self._apply(desk.on_path(tok, bar_path(*(int(x * 100 + 0.5) for x in (o_l[k], h_l[k], l_l[k],
                                                                                              c_l[k])))))
            for k in range(n, j):
                tok = tok_l[k]
                price[tok] = c_l[k]
                if tok in watched:
                    last[tok] = Bar(tok, interval, ts, o_l[k], h_l[k], l_l[k], c_l[k], v_l[k], oi_l[k])
                if tok in open_tokens:
                    desk.mark(tok, int(c_l[k] * 100 + 0.5))
            rec.bars += j - n
            if open_tokens:
                rec.bars_in_market += j - n
                rec.equity(ts, capital + tracker.realised + tracker.unrealised - rec.charges)
            if rec.bars // rec.curve_step > len(rec.curve):
                rec.sample(ts, capital + tracker.realised + tracker.unrealised - rec.charges)
            n = j
        close = max(int(c.ts[-1]) for c in bars.values()) + _seconds(interval) - 1
        desk.now = ctx.now = close
        self._day_end(close)

    def _candles(self, token: int, day_start: int) -> Candles:
        """A contract's candles of one day, its month read once (a contract trades on many days)."""
        month = ist.now(day_start).strftime("%Y-%m")
        if self._month != month:
            self._month, self._cache = month, {}
        whole = self._cache.get(token)
        if whole is None:
            a, b = month_span(month, 0, 2**40)
            whole = self._cache[token] = self.store.read(token, self.spec.interval, a, b)
        a, b = np.searchsorted(whole.ts, [day_start, day_start + 86400]).tolist()
        return whole.slice(a, b)

    def _instruments(self, day: date) -> None:
        """The day's instruments: its snapshot's chains of the underlyings (and the underlyings)."""
        if self.archive is None:
            return
        found = self.archive.load(day, names=set(self.names), tokens=set(self.setup.tokens))
        held = {t: self.desk.instruments[t] for t in self.desk.open_tokens if t in self.desk.instruments}
        known = {i.instrument_token for i in found}
        found += [i for t, i in held.items() if t not in known]  # a held contract stays known until it is closed
        ctx = self.setup.ctx
        ctx.set_instruments(found)
        self.desk.by_key = ctx.by_symbol
        self.desk.instruments.update(ctx.by_token)

