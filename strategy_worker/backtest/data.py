"""Getting a backtest's data into the candle store: today's instrument snapshot, then the candles of its
instruments over its range plus the warm-up before it, fetched from Kite only where the store has gaps."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta

from shared import ist
from shared.candles.fetch import Progress, refresh
from shared.candles.instruments import InstrumentArchive
from shared.candles.store import CandleStore
from shared.kite.client import KiteClient
from shared.kite.models import Instrument
from shared.messages import INTERVAL_SECONDS, BacktestSpec
from strategy_worker.backtest.engine import resolve
from strategy_worker.backtest.job import candles_root

SESSION_SECONDS = 375 * 60


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
    """Fetch what ``spec`` needs and the store lacks; returns the candles written."""
    await snapshot_instruments(kite, data_dir)
    instruments = InstrumentArchive(candles_root(data_dir)).load(spec.start)
    setup = resolve(spec, instruments, "fetch", "FETCH")
    end = int(datetime.combine(spec.end + timedelta(days=1), datetime.min.time(), ist.IST).timestamp()) - 1
    return await refresh(kite, CandleStore(candles_root(data_dir)), setup.feed_tokens, spec.interval,
                         warmup_start(spec), end, progress=progress, now=now)
