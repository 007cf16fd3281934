"""The strategy engine under test: two test strategies (registered for the test by ``with_test_strategies``),
``Worker`` (the engine with its command surface, instruments loaded, users live), ticks and 5-minute bars
from closes, a fill as the execution worker reports it. A module using these fixtures imports them."""

from typing import Annotated

import msgspec
import pytest
from msgspec import Meta

from shared import messages as m
from shared.messages import Bar, Tick, TransactionType
from strategy_worker.commands import StrategyCommands
from strategy_worker.engine import StrategyEngine
from strategy_worker.seeding import Seeder
from strategy_worker.strategies import registry
from strategy_worker.strategies.base import BaseStrategy
from tests.helpers import stack_settings
from tests.strategy_worker.kit import INFY, INSTRUMENTS, OPEN

USER = "DEMO01"


class AboveLevel(BaseStrategy):
    """Test strategy: long while flat and a bar closes above ``level`` (a level, not an event:
    a fresh instance would enter again on the next such bar)."""

    name = "test_above_level"
    description = "test"

    class Params(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
        level: Annotated[float, Meta(ge=0, le=1e6, description="Entry level")] = 100.0

    def on_bar(self, bar: Bar) -> list:
        self.state["bars"] = self.state.get("bars", 0) + 1
        if bar.close > self.params.level:
            return [self.entry(TransactionType.BUY, 0.7, "above level", 0.01, price=bar.close)]
        return []


class Raiser(BaseStrategy):
    """Test strategy whose second bar hits a bug."""

    name = "test_raiser"
    description = "test"

    class Params(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
        pass

    def on_bar(self, bar: Bar) -> list:
        self.state["bars"] = self.state.get("bars", 0) + 1
        if self.state["bars"] >= 2:
            raise ZeroDivisionError("division by zero in on_bar")
        return []


@pytest.fixture(autouse=True)
def with_test_strategies():
    for cls in (AboveLevel, Raiser):
        registry.register(cls)
    yield
    for cls in (AboveLevel, Raiser):
        registry.unregister(cls.name)


ENGINES: list[StrategyEngine] = []


@pytest.fixture(autouse=True)
async def close_engines():
    """An engine's broker clients follow the sessions in KV from a task on the test's bus: closed
    here, as the worker closes them, not left to the bus."""
    yield
    while ENGINES:
        await ENGINES.pop().clients.close()


class Worker:
    """The engine with its command surface, instruments loaded, users live, symbols ready."""

    def __init__(self, bus, data_dir, **overrides) -> None:
        self.e = StrategyEngine(bus, stack_settings(bus.nc.connected_url.geturl(), data_dir, **overrides))
        ENGINES.append(self.e)
        self.e.ctx.set_instruments(list(INSTRUMENTS))
        self.c = StrategyCommands(self.e, Seeder(self.e))

    def add(self, user: str, strategy: str, sid: str, tokens=(INFY,), **params) -> m.Ok | m.Error:
        self.e.users[user].live = False  # added, then live: no history is asked of a broker here
        reply = self.c.add(user, m.AddStrategy(strategy=strategy, params=params, tokens=list(tokens), strategy_id=sid))
        self.e.users[user].live = True
        for t in tokens:
            self.e.series_ready(t)
        return reply

    def instance(self, user: str, sid: str, token: int = INFY):
        return self.e.get(user, sid).runner.instances[token]


def tick(price: float, second: int, volume: int = 0, token: int = INFY) -> Tick:
    ts = OPEN + second
    return Tick(token, "full", True, price, volume_traded=volume, exchange_timestamp=ts, received_at=ts * 10**9)


async def bars_of(engine: StrategyEngine, closes: list[float], first_bar: int = 0, token: int = INFY) -> None:
    """One tick per 5-minute bar at its close price, then a tick into the next bar to complete it."""
    for i, c in enumerate(closes):
        await engine.on_tick(tick(c, 300 * (first_bar + i) + 10, volume=1000 * (first_bar + i + 1), token=token))
    await engine.on_tick(tick(closes[-1], 300 * (first_bar + len(closes)) + 10, token=token))


def filled(sig, qty: int | None = None, seq: int = 1) -> m.StrategyOutcome:
    q = qty or sig.quantity
    return m.StrategyOutcome(user_id=sig.user_id, strategy_id=sig.strategy_id, kind="filled", seq=seq,
                             signal_id=sig.id, order_kind=sig.intent, instrument_token=sig.instrument_token,
                             transaction_type=sig.transaction_type, quantity=q, price=10_100, position=q,
                             average_price=10_100, trade_id=f"T{seq}")
