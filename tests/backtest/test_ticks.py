"""A strategy that needs ticks gets them in a backtest by the engine's documented rule: four a bar, at the open,
the two extremes in the order of ``shared.fills.bar_path`` (low first on a rising bar, high first on a falling
one) and the close, a quarter of the bar apart; a signal on a tick fills at that tick's price and the spread."""

from __future__ import annotations

from typing import Annotated

import msgspec
import pytest
from msgspec import Meta

from shared.candles.store import CandleStore
from shared.messages import BacktestSpec, Tick, TransactionType
from strategy_worker.backtest.engine import Backtest
from strategy_worker.strategies import registry
from strategy_worker.strategies.base import BaseStrategy
from tests.backtest.kit import INFY, INSTRUMENTS, seed_store

TICKS: list[tuple[int, float]] = []  # (exchange time, price) of every tick the strategy heard


class TickProbe(BaseStrategy):
    """Records its ticks; enters on the 3rd tick of its 10th bar (the bar's second extreme)."""

    name = "test_tick_probe"
    description = "test"

    class Params(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
        quantity: Annotated[int, Meta(ge=1, le=100, description="Shares")] = 5

    def on_tick(self, tick: Tick) -> list:
        TICKS.append((tick.exchange_timestamp, tick.last_price))
        if len(TICKS) == 4 * 9 + 3:
            return [self.entry(TransactionType.BUY, 0.6, "probe", 0.05, price=tick.last_price)]
        return []


@pytest.fixture
def probe():
    registry.register(TickProbe)
    TICKS.clear()
    yield
    registry.unregister(TickProbe.name)


def test_four_ticks_a_bar_along_its_path_and_a_signal_fills_at_its_tick(tmp_path, probe):
    days = seed_store(tmp_path, days=1)
    spec = BacktestSpec(strategy=TickProbe.name, symbols=["INFY"], start=days[0], end=days[0], interval="minute",
                        params={}, warmup_bars=0)
    rec = Backtest(spec, INSTRUMENTS, CandleStore(tmp_path / "candles")).run()
    c = CandleStore(tmp_path / "candles").read(INFY.instrument_token, "minute", 0, 2**33)
    expected = []
    for ts, o, h, lo, cl in zip(c.ts.tolist(), c.open.tolist(), c.high.tolist(), c.low.tolist(), c.close.tolist()):
        path = (o, lo, h, cl) if cl >= o else (o, h, lo, cl)
        expected += [(ts + 15 * i, price) for i, price in enumerate(path)]
    assert TICKS == expected and len(TICKS) == 4 * 375
    entry = next(f for f in rec.fills if f["kind"] == "entry")
    at, price = expected[4 * 9 + 2]
    assert (entry["ts"], entry["price"]) == (at, round(price * 100) + 5)  # that tick's price, one tick of spread
