"""Small factories for strategy tests: instruments, a context, bars from closes, a bar feeder that
does what the engine does before ``on_bar`` (the bar's close becomes the token's last tick)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from shared.kite.models import Instrument
from shared.messages import Bar, Tick
from strategy_worker.strategies import registry
from strategy_worker.strategies.base import StrategyContext

IST = timezone(timedelta(hours=5, minutes=30))
OPEN = int(datetime(2026, 11, 24, 9, 15, tzinfo=IST).timestamp())
INFY = 408065
NIFTY = 256265
NIFTY_FUT = 13238786

INSTRUMENTS = [
    Instrument(instrument_token=INFY, exchange_token=1594, tradingsymbol="INFY", name="INFOSYS", last_price=0,
               expiry=None, strike=0, tick_size=0.05, lot_size=1, instrument_type="EQ", segment="NSE",
               exchange="NSE"),
    Instrument(instrument_token=NIFTY, exchange_token=1001, tradingsymbol="NIFTY 50", name="NIFTY 50",
               last_price=0, expiry=None, strike=0, tick_size=0, lot_size=0, instrument_type="EQ",
               segment="INDICES", exchange="NSE"),
    Instrument(instrument_token=NIFTY_FUT, exchange_token=51714, tradingsymbol="NIFTY26DECFUT", name="NIFTY",
               last_price=0, expiry=date(2026, 12, 29), strike=0, tick_size=0.1, lot_size=65,
               instrument_type="FUT", segment="NFO-FUT", exchange="NFO"),
]


def context() -> StrategyContext:
    return StrategyContext(list(INSTRUMENTS), {})


def make(name: str, params: dict | None = None, tokens=(INFY,), ctx: StrategyContext | None = None,
         strategy_id: str = "s1"):
    cls = registry.get(name)
    return cls(strategy_id, "DEMO01", registry.validate_params(name, params or {}), list(tokens), ctx or context())


def bars(closes, token: int = INFY, spread: float = 0.5, volumes=None, interval: str = "5minute",
         start: int = OPEN) -> list[Bar]:
    volumes = volumes or [1000] * len(closes)
    return [Bar(token, interval, start + 300 * i, c, c + spread, c - spread, c, v)
            for i, (c, v) in enumerate(zip(closes, volumes))]


def feed(strategy, series: list[Bar]) -> list[tuple[int, object]]:
    """(bar index, signal) for everything the strategy emitted."""
    out = []
    for i, bar in enumerate(series):
        tick = Tick(bar.instrument_token, "full", True, bar.close, exchange_timestamp=bar.start + 299,
                    received_at=(bar.start + 299) * 10**9)
        strategy.ctx.last_ticks[bar.instrument_token] = tick
        strategy.last_tick = tick
        out.extend((i, s) for s in strategy.on_bar(bar))
    return out
