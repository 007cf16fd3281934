"""The stock scanner: a screen over the instrument universe by price, volume and indicator
conditions, from quotes and daily history (the original design's ``StockScanner``).

A scan runs in two passes so a wide universe stays cheap: the quote-only conditions (price,
volume, gap) first, from Kite's quote endpoint in batches of 500; then daily candles only for the
survivors, and only when a condition needs them (volume spike, RSI, 52-week high/low). Completed
daily candles never change: they come from the local candle store (``shared/candles``), fetched from Kite
only for the days the store does not have yet (a first scan of the universe pays Kite's 3 historical
calls a second once; later scans and later days fetch at most the days since), and are cached in memory
for the trading day. The answer says which universe was scanned and how many histories were fetched.

Definitions (all on daily data, exchange time):
- ``change_pct`` = (last − previous close) / previous close × 100
- ``gap_pct`` = (today's open − previous close) / previous close × 100
- ``volume_ratio`` = today's volume / mean volume of the last ``volume_days`` completed days
- ``rsi`` = Wilder RSI(``rsi_period``) over the completed daily closes, then today's last price
- ``high_52w`` / ``low_52w`` = extremes of the completed days in ``lookback_days`` and today's range
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from shared import messages as m
from shared.candles.fetch import refresh
from shared.candles.store import CandleStore
from shared.ist import IST
from shared.kite.client import KiteClient
from shared.kite.models import Candle, Instrument, Quote
from strategy_worker.indicators import RSI

QUOTE_BATCH = 500  # Kite's limit of instruments per /quote call
HISTORY_CONCURRENCY = 3  # Kite allows 3 historical requests a second; the client paces them


class ScanError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def needs_history(cmd: m.Scan) -> bool:
    return any(v is not None for v in (cmd.volume_spike, cmd.rsi_below, cmd.rsi_above, cmd.near_high_pct,
                                       cmd.near_low_pct))


def quote_metrics(key: str, q: Quote) -> dict[str, Any]:
    prev = q.ohlc.close
    pct = (lambda x: round((x - prev) / prev * 100, 4)) if prev else (lambda x: None)
    return {"symbol": key, "instrument_token": q.instrument_token, "last_price": q.last_price,
            "open": q.ohlc.open, "high": q.ohlc.high, "low": q.ohlc.low, "prev_close": prev, "volume": q.volume,
            "change_pct": pct(q.last_price), "gap_pct": pct(q.ohlc.open) if q.ohlc.open else None}


def history_metrics(row: dict[str, Any], daily: list[Candle], cmd: m.Scan) -> dict[str, Any]:
    """Adds volume_ratio, rsi and the 52-week range to ``row`` from completed daily candles."""
    recent = [c.volume for c in daily[-cmd.volume_days:]]
    avg = sum(recent) / len(recent) if recent else 0
    rsi = RSI(cmd.rsi_period)
    for c in daily:
        rsi.update(c.close)
    value = rsi.update(row["last_price"])
    highs = [c.high for c in daily] + ([row["high"]] if row["high"] else [])
    lows = [c.low for c in daily] + ([row["low"]] if row["low"] else [])
    hi, lo = (max(highs), min(lows)) if highs and lows else (None, None)
    ltp = row["last_price"]
    return {**row, "avg_volume": round(avg, 2), "volume_ratio": round(row["volume"] / avg, 4) if avg else None,
            "rsi": round(value, 4) if value is not None else None, "high_52w": hi, "low_52w": lo,
            "pct_from_high": round((hi - ltp) / hi * 100, 4) if hi else None,
            "pct_from_low": round((ltp - lo) / lo * 100, 4) if lo else None, "days": len(daily)}


def _check(matched: list[str], value, ok, text: str) -> bool:
    if value is None or not ok(value):
        return False
    matched.append(text)
    return True


def quote_conditions(row: dict[str, Any], cmd: m.Scan) -> list[str] | None:
    """What the row matched of the quote-only conditions; None when one of them fails."""
    out: list[str] = []
    ltp, vol, gap = row["last_price"], row["volume"], row["gap_pct"]
    checks = [
        (cmd.min_price, lambda: _check(out, ltp, lambda v: v >= cmd.min_price, f"price ≥ {cmd.min_price:g}")),
        (cmd.max_price, lambda: _check(out, ltp, lambda v: v <= cmd.max_price, f"price ≤ {cmd.max_price:g}")),
        (cmd.min_volume, lambda: _check(out, vol, lambda v: v >= cmd.min_volume, f"volume ≥ {cmd.min_volume}")),
        (cmd.gap_up_pct, lambda: _check(out, gap, lambda v: v >= cmd.gap_up_pct, f"gap up {gap}%")),
        (cmd.gap_down_pct, lambda: _check(out, gap, lambda v: v <= -cmd.gap_down_pct, f"gap down {gap}%")),
    ]
    return out if all(check() for limit, check in checks if limit is not None) else None


def history_conditions(row: dict[str, Any], cmd: m.Scan) -> list[str] | None:
    out: list[str] = []
    ratio, rsi = row["volume_ratio"], row["rsi"]
    checks = [
        (cmd.volume_spike, lambda: _check(out, ratio, lambda v: v >= cmd.volume_spike,
                                          f"volume {ratio}× the {cmd.volume_days}-day average")),
        (cmd.rsi_below, lambda: _check(out, rsi, lambda v: v < cmd.rsi_below, f"RSI {rsi} < {cmd.rsi_below:g}")),
        (cmd.rsi_above, lambda: _check(out, rsi, lambda v: v > cmd.rsi_above, f"RSI {rsi} > {cmd.rsi_above:g}")),
        (cmd.near_high_pct, lambda: _check(out, row["pct_from_high"], lambda v: v <= cmd.near_high_pct,
                                           f"{row['pct_from_high']}% below the 52-week high")),
        (cmd.near_low_pct, lambda: _check(out, row["pct_from_low"], lambda v: v <= cmd.near_low_pct,
                                          f"{row['pct_from_low']}% above the 52-week low")),
    ]
    return out if all(check() for limit, check in checks if limit is not None) else None


def sort_rows(rows: list[dict[str, Any]], by: str) -> list[dict[str, Any]]:
    if by == "symbol":
        return sorted(rows, key=lambda r: r["symbol"])
    if by == "rsi":  # most oversold first
        return sorted(rows, key=lambda r: (r.get("rsi") is None, r.get("rsi") or 0.0))
    sign = (lambda v: abs(v)) if by == "gap_pct" else (lambda v: v)
    return sorted(rows, key=lambda r: (r.get(by) is None, -sign(r.get(by) or 0.0)))


@dataclass
class _Cached:
    day: date
    lookback: int
    candles: list[Candle]


class Scanner:
    def __init__(self, store: CandleStore) -> None:
        self.store = store
        self._daily: dict[int, _Cached] = {}
        self.fetched = 0  # histories that needed Kite (the rest came from the store)

    def universe(self, instruments: list[Instrument], cmd: m.Scan) -> list[str]:
        if not cmd.symbols:
            return [f"{i.exchange}:{i.tradingsymbol}" for i in instruments
                    if i.exchange == "NSE" and i.segment == "NSE" and i.instrument_type == "EQ"]
        known = {f"{i.exchange}:{i.tradingsymbol}" for i in instruments}
        unknown = [s for s in cmd.symbols if s not in known]
        if unknown:
            raise ScanError("symbols", f"unknown instruments: {', '.join(unknown[:10])}")
        return list(dict.fromkeys(cmd.symbols))

    async def scan(self, kite: KiteClient, instruments: list[Instrument], cmd: m.Scan) -> dict[str, Any]:
        if cmd.min_price is not None and cmd.max_price is not None and cmd.min_price > cmd.max_price:
            raise ScanError("max_price", f"max_price {cmd.max_price:g} is below min_price {cmd.min_price:g}")
        keys = self.universe(instruments, cmd)
        universe = (f"the {len(keys)} symbol(s) given" if cmd.symbols else
                    f"every NSE equity in the broker's instrument list ({len(keys)})")
        fetched_before = self.fetched
        quotes: dict[str, Quote] = {}
        for i in range(0, len(keys), QUOTE_BATCH):
            quotes.update(await kite.quote(*keys[i:i + QUOTE_BATCH]))
        as_of = max((q.timestamp for q in quotes.values() if q.timestamp), default="")
        today = datetime.strptime(as_of[:10], "%Y-%m-%d").date() if as_of else datetime.now(IST).date()
        rows = []
        for key in keys:
            q = quotes.get(key)
            if q is None:
                continue
            row = quote_metrics(key, q)
            matched = quote_conditions(row, cmd)
            if matched is not None:
                rows.append((row, matched))
        if needs_history(cmd):
            limit = asyncio.Semaphore(HISTORY_CONCURRENCY)

            async def enrich(item):
                row, matched = item
                async with limit:
                    daily = await self.daily(kite, row["instrument_token"], today, cmd.lookback_days)
                full = history_metrics(row, daily, cmd)
                more = history_conditions(full, cmd)
                return None if more is None else (full, matched + more)

            rows = [r for r in await asyncio.gather(*(enrich(x) for x in rows)) if r is not None]
        out = sort_rows([{**row, "matched": matched} for row, matched in rows], cmd.sort_by)
        return {"as_of": as_of, "universe": universe, "scanned": len(quotes), "matched": len(out),
                "history_fetched": self.fetched - fetched_before, "rows": out[:cmd.limit]}

    async def daily(self, kite: KiteClient, token: int, today: date, lookback_days: int) -> list[Candle]:
        """Completed daily candles (before ``today``) over ``lookback_days``: from the candle store, the
        days it lacks fetched first; cached for the day."""
        hit = self._daily.get(token)
        if hit is not None and hit.day == today and hit.lookback >= lookback_days:
            start = today - timedelta(days=lookback_days)
            return [c for c in hit.candles if c.date.date() >= start]
        start = int(datetime.combine(today - timedelta(days=lookback_days), time(0, 0), IST).timestamp())
        midnight = int(datetime.combine(today, time(0, 0), IST).timestamp())
        if self.store.missing(token, "day", start, midnight - 1):
            self.fetched += 1
            await refresh(kite, self.store, [token], "day", start, midnight - 1, now=midnight)
        c = self.store.read(token, "day", start, midnight - 1)
        candles = [Candle(datetime.fromtimestamp(t, IST), o, h, lo, cl, v, oi) for t, o, h, lo, cl, v, oi in
                   zip(c.ts.tolist(), c.open.tolist(), c.high.tolist(), c.low.tolist(), c.close.tolist(),
                       c.volume.tolist(), c.oi.tolist())]
        self._daily[token] = _Cached(today, lookback_days, candles)
        return candles
