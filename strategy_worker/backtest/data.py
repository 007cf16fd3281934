"""Getting a backtest's data into the candle store: today's instrument snapshot, then the candles of its
instruments over its range plus the warm-up before it, fetched from Kite only where the store has gaps."""

from __future__ import annotations

import asyncio
import logging
import math
from datetime import date, datetime, timedelta

from shared import ist
from shared.candles.fetch import Progress, refresh
from shared.candles.instruments import InstrumentArchive
from shared.candles.store import CandleStore
from shared.kite import errors
from shared.kite.client import KiteClient
from shared.kite.models import Instrument
from shared.messages import INTERVAL_SECONDS, BacktestSpec
from strategy_worker.backtest.engine import resolve
from strategy_worker.backtest.job import candles_root, is_options
from strategy_worker.backtest.options import by_day, day_contracts

SESSION_SECONDS = 375 * 60
log = logging.getLogger("kta.backtest")


async def snapshot_instruments(kite: KiteClient, data_dir, day: date | None = None) -> list[Instrument]:
    """Today's instrument list, saved as the day's snapshot (once a day)."""
    archive = InstrumentArchive(candles_root(data_dir))
    day = day or ist.now(datetime.now().timestamp()).date()
    if archive.has(day):
        return archive.load(day)
    instruments = await kite.instruments()
    archive.save(day, instruments)
    return instruments


def warmup_start(spec: BacktestSpec) -> int:
    """Epoch s from which the warm-up bars before ``spec.start`` are fetched (weekends and holidays allowed)."""
    per_day = max(1, SESSION_SECONDS // INTERVAL_SECONDS[spec.interval]) if spec.interval != "day" else 1
    days = math.ceil(spec.warmup_bars / per_day * 7 / 5) + 4 if spec.warmup_bars else 0
    first = datetime.combine(spec.start - timedelta(days=days), datetime.min.time(), ist.IST)
    return int(first.timestamp())


async def ensure(kite: KiteClient, data_dir, spec: BacktestSpec, progress: Progress | None = None,
                 now: float | None = None) -> int:
    """Fetch what ``spec`` needs and the store lacks; returns the candles written. For an option strategy,
    after the underlying: each contract it would follow on each day (``contract_spans``) from that day to
    its expiry — Kite serves only contracts it still lists, so one it no longer knows is skipped."""
    await snapshot_instruments(kite, data_dir)
    instruments = InstrumentArchive(candles_root(data_dir)).load(spec.start)
    setup = resolve(spec, instruments, "fetch", "FETCH")
    store = CandleStore(candles_root(data_dir))
    written = await refresh(kite, store, setup.feed_tokens, spec.interval, warmup_start(spec), _end(spec),
                            progress=progress, now=now)
    if not is_options(spec):
        return written
    spans = await asyncio.to_thread(contract_spans, spec, data_dir)  # seconds of CPU: not on the worker's loop
    for done, (token, (a, b)) in enumerate(sorted(spans.items()), 1):
        try:
            written += await refresh(kite, store, [token], spec.interval, a, b, now=now)
        except errors.InputException as e:  # an expired contract Kite no longer lists
            log.warning("no candles for contract %s: %s", token, e)
        if progress is not None:
            progress(done, len(spans), f"option contract {token}")
    return written


def contract_spans(spec: BacktestSpec, data_dir) -> dict[int, tuple[int, int]]:
    """Option contracts an options backtest of ``spec`` loads, with the span (epoch s) it needs of each:
    from the first day it is followed to its expiry (a structure can be held that long) or the range's end.
    Needs the underlying's candles in the store (they say where the spot went each day)."""
    archive = InstrumentArchive(candles_root(data_dir))
    setup = resolve(spec, archive.load(spec.start), "fetch", "FETCH")
    runner, ctx = setup.runner, setup.ctx
    names, tokens = {ctx.underlying_name(t) for t in setup.tokens}, set(setup.tokens)
    store, end = CandleStore(candles_root(data_dir)), _end(spec)
    days: dict[date, dict[int, tuple[float, float]]] = {}
    for t in setup.tokens:
        for day, c in by_day(store.read(t, spec.interval, _start(spec), end)).items():
            days.setdefault(day, {})[t] = (float(c.low.min()), float(c.high.max()))
    spans: dict[int, tuple[int, int]] = {}
    for day, ranges in sorted(days.items()):
        ctx.set_instruments(archive.load(day, names=names, tokens=tokens))
        ctx.now = _day_start(day) + 9 * 3600
        for token in day_contracts(runner, ctx, ranges):
            inst = ctx.by_token[token]
            last = min(end, _day_start(inst.expiry) + 86399) if inst.expiry else end
            a, b = spans.get(token, (_day_start(day), last))
            spans[token] = (min(a, _day_start(day)), max(b, last))
    return spans


def has_contract_candles(spec: BacktestSpec, data_dir) -> bool:
    """Whether the store holds candles of any contract an options backtest of ``spec`` would trade."""
    store = CandleStore(candles_root(data_dir))
    return any(store.has_data(t, spec.interval, a, b) for t, (a, b) in contract_spans(spec, data_dir).items())


def _day_start(day: date) -> int:
    return int(datetime.combine(day, datetime.min.time(), ist.IST).timestamp())


def _start(spec: BacktestSpec) -> int:
    return _day_start(spec.start)


def _end(spec: BacktestSpec) -> int:
    return _day_start(spec.end + timedelta(days=1)) - 1
