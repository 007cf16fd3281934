"""Filling the candle store from Kite's historical API, within its limits: each request spans at most the
interval's maximum range (``HISTORICAL_MAX_DAYS``), the client paces requests at Kite's 3 a second, and
only the spans the store does not cover yet are fetched (an incremental refresh costs one request per
series when nothing is missing but today)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime

from shared.candles.store import Candles, CandleStore, check_interval
from shared.ist import IST
from shared.kite.client import HISTORICAL_MAX_DAYS, KiteClient

Progress = Callable[[int, int, str], None]  # (requests done, requests planned, what)


def plan(store: CandleStore, token: int, interval: str, start: int, end: int) -> list[tuple[int, int]]:
    """The requests (from, to) that fill the store's gaps over [start, end]."""
    span = HISTORICAL_MAX_DAYS[check_interval(interval)] * 86400
    out = []
    for a, b in store.missing(token, interval, start, end):
        while a <= b:
            out.append((a, min(b, a + span - 1)))
            a += span
    return out


async def refresh(kite: KiteClient, store: CandleStore, tokens: list[int], interval: str, start: int, end: int, *,
                  oi: bool = False, progress: Progress | None = None, now: float | None = None) -> int:
    """Fetch what the store is missing for ``tokens`` over [start, end]; returns candles written. A span
    that reaches today (``now``'s IST day) is covered only up to its last candle, which may still be
    forming: the next refresh fetches it again (and replaces it) with whatever followed."""
    now = now if now is not None else time.time()
    today = int(datetime.fromtimestamp(now, IST).replace(hour=0, minute=0, second=0, microsecond=0).timestamp())
    requests = [(t, a, b) for t in tokens for a, b in plan(store, t, interval, start, end)]
    written = 0
    for done, (token, a, b) in enumerate(requests, 1):
        rows = await kite.historical_data(token, _dt(a), _dt(b), interval, oi=oi)
        candles = [(int(c.date.timestamp()), c.open, c.high, c.low, c.close, c.volume, c.oi or 0) for c in rows]
        covered_to = b if b < today else (candles[-1][0] - 1 if candles else a - 1)
        span = (a, min(b, covered_to)) if covered_to >= a else None
        # Parquet's merge and write in a thread (pyarrow lets the GIL go): a strategy worker seeding its live users at
        # start held its event loop for them, the ticks queued behind
        written += await asyncio.to_thread(lambda: store.write(token, interval, Candles.from_rows(candles), span=span))
        if progress is not None:
            progress(done, len(requests), f"{token} {interval} {_dt(a):%Y-%m-%d}")
    return written


def _dt(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, IST).replace(tzinfo=None)
