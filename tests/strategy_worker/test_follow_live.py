"""A strategy added without symbols follows the live symbols: at every Start it trades the Start's
symbols, across Stop / Start and a restart of the worker (a trader added six strategies without
symbols while live on INFY, then started on INFY, NIFTY 50, RELIANCE and NIFTY BANK: all six traded
INFY only, frozen at the moment they were added). One added with symbols keeps them. An instance
holding or in flight on a symbol that left the live set is kept, its ticks subscribed, until flat.
Real nats-server, real SQLite."""

import sqlite3
from typing import Annotated

import msgspec
import pytest
from msgspec import Meta

from shared import messages as m
from shared.messages import Bar, TransactionType
from strategy_worker.strategies import registry
from strategy_worker.strategies.base import BaseStrategy
from strategy_worker.store import StrategyStore
from tests.strategy_worker.engine_kit import (  # noqa: F401 - autouse
    USER,
    Worker,
    bars_of,
    close_engines,
    with_test_strategies,
)
from tests.strategy_worker.kit import INFY, NIFTY, NIFTY_FUT, OPEN, TCS


class LevelTrader(BaseStrategy):
    """Test strategy: long above ``level``, out below it."""

    name = "test_level_trader"
    description = "test"

    class Params(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
        level: Annotated[float, Meta(ge=0, le=1e6, description="Level")] = 100.0

    def on_bar(self, bar: Bar) -> list:
        if not self.held() and bar.close > self.params.level:
            return [self.entry(TransactionType.BUY, 0.7, "above level", 0.01, price=bar.close)]
        if self.held() and bar.close < self.params.level:
            return [self.exit(0.8, "below level")]
        return []


@pytest.fixture
def level_trader():
    registry.register(LevelTrader)
    yield
    registry.unregister(LevelTrader.name)


def fill(entry: dict, position: int, seq: int) -> m.StrategyOutcome:
    return m.StrategyOutcome(user_id=USER, strategy_id=entry["strategy_id"], kind="filled", seq=seq,
                             signal_id=entry["id"], order_kind=entry["intent"], instrument_token=entry["instrument_token"],
                             transaction_type=TransactionType(entry["transaction_type"]), quantity=entry["quantity"],
                             price=10_100, position=position, average_price=10_100, trade_id=f"T{seq}")


def add(w: Worker, sid: str, tokens=()) -> m.Ok | m.Error:
    return w.c.add(USER, m.AddStrategy(strategy="test_above_level", params={"level": 100}, tokens=list(tokens),
                                       strategy_id=sid))


async def start(w: Worker, tokens: list[int]) -> m.Ok | m.Error:
    reply = await w.c.start_live(USER, tokens, "full")
    await w.c.seeder.idle()  # no broker session: every symbol is ready at once (trades cold)
    return reply


def signalled(w: Worker) -> set[tuple[str, str]]:
    return {(s["strategy_id"], s["tradingsymbol"]) for s in w.e.users[USER].signal_log if not s.get("refused")}


def listed(w: Worker) -> dict[str, dict]:
    return {r["strategy_id"]: r for r in w.c.listing(USER)}


async def test_a_strategy_added_without_symbols_trades_each_starts_symbols(bus, data_dir):
    w = Worker(bus, data_dir)
    assert isinstance(add(w, "follow"), m.Ok) and isinstance(add(w, "own", [INFY]), m.Ok)
    assert isinstance(await start(w, [INFY]), m.Ok)
    await bars_of(w.e, [101.0, 102.0], token=INFY)
    assert signalled(w) == {("follow", "INFY"), ("own", "INFY")}
    w.c.stop_live(USER)

    assert isinstance(await start(w, [INFY, TCS]), m.Ok)
    await bars_of(w.e, [101.0, 102.0], token=TCS)
    assert ("follow", "TCS") in signalled(w) and ("own", "TCS") not in signalled(w)
    rows = listed(w)
    assert rows["follow"]["follows_live"] and rows["follow"]["tokens"] == [INFY, TCS]
    assert not rows["own"]["follows_live"] and rows["own"]["tokens"] == [INFY]
    # added while live: today's live symbols at once, and it follows the next Start too
    assert isinstance(add(w, "later"), m.Ok) and listed(w)["later"]["tokens"] == [INFY, TCS]


async def test_following_survives_a_restart_and_keeps_an_instance_in_flight_until_flat(bus, data_dir):
    w = Worker(bus, data_dir)
    add(w, "follow")
    add(w, "own", [INFY])
    await start(w, [INFY])
    await bars_of(w.e, [101.0, 102.0], token=INFY)
    entry = next(s for s in w.e.users[USER].signal_log if s["strategy_id"] == "follow")
    w.c.stop_live(USER)

    again = Worker(bus, data_dir)  # a restarted worker on the same store
    again.e.restore()
    assert again.e.get(USER, "follow").follows and not again.e.get(USER, "own").follows
    assert isinstance(await start(again, [TCS]), m.Ok)
    runner = again.e.get(USER, "follow").runner
    assert set(runner.instances) == {INFY, TCS}  # INFY's entry is still in flight: kept, not dropped
    assert INFY in again.e.users[USER].subscribed  # its ticks still come for its exit
    assert again.e.get(USER, "own").runner.tokens == [INFY]
    await bars_of(again.e, [101.0, 102.0], token=TCS)
    assert ("follow", "TCS") in signalled(again) and ("own", "TCS") not in signalled(again)

    await again.e.on_outcome(m.StrategyOutcome(user_id=USER, strategy_id="follow", kind="refused", seq=1,
                                               signal_id=entry["id"], instrument_token=INFY, code="TEST"))
    await bars_of(again.e, [103.0, 104.0], first_bar=10, token=INFY)  # flat now: retired, no new entry
    assert set(runner.instances) == {TCS}
    assert ("follow", "INFY") not in signalled(again)


def test_a_store_written_before_following_loads_with_symbol_less_strategies_following(data_dir):
    path = data_dir / "strategies.db"
    with sqlite3.connect(path) as db:  # the old schema, no `follows`
        db.execute("CREATE TABLE strategies (user_id TEXT, strategy_id TEXT, name TEXT, params TEXT, tokens TEXT, "
                   "snapshot TEXT, status TEXT, error TEXT, PRIMARY KEY (user_id, strategy_id))")
        db.executemany("INSERT INTO strategies VALUES (?, ?, 'rsi', '{}', ?, '{}', 'active', '')",
                       [(USER, "bare", "[]"), (USER, "mine", f"[{INFY}]")])
    db.close()
    rows = {r["strategy_id"]: r for r in StrategyStore(path).all()}
    assert rows["bare"]["follows"] == 1 and rows["mine"]["follows"] == 0
    assert rows["mine"]["tokens"] == [INFY]


async def test_an_option_strategy_skips_live_symbols_without_an_option_chain_and_says_so(bus, data_dir):
    """iron_condor and strangle following INFY (kite_sim lists no INFY options) sat "running" with 0
    signals and nothing said why: now they skip INFY, the Start's answer and the listing say so, and
    an option strategy added with such a symbol is refused naming the field."""
    from tests.shared.test_options import sim_instruments

    w = Worker(bus, data_dir)
    w.e.ctx.set_instruments(sim_instruments())
    nifty, infy = w.e.ctx.by_symbol["NSE:NIFTY 50"].instrument_token, w.e.ctx.by_symbol["NSE:INFY"].instrument_token
    refused = w.c.add(USER, m.AddStrategy(strategy="iron_condor", tokens=[infy], strategy_id="mine"))
    assert isinstance(refused, m.Error) and refused.field == "tokens" and "no option chain for INFY" in refused.message
    assert isinstance(w.c.add(USER, m.AddStrategy(strategy="iron_condor", strategy_id="ic")), m.Ok)
    reply = await start(w, [infy, nifty])
    assert reply.data["skipped"] == [{"strategy_id": "ic", "token": infy, "symbol": "INFY",
                                      "reason": "no option chain"}]
    row = listed(w)["ic"]
    assert row["tokens"] == [nifty] and row["skipped"] == [{"token": infy, "symbol": "INFY",
                                                            "reason": "no option chain"}]
    added = w.c.add(USER, m.AddStrategy(strategy="strangle", strategy_id="sg"))  # added while live
    assert added.data["tokens"] == [nifty] and [s["symbol"] for s in added.data["skipped"]] == ["INFY"]


async def test_a_position_on_a_symbol_that_left_the_live_set_still_gets_its_exit(bus, data_dir, level_trader):
    w = Worker(bus, data_dir)
    w.c.add(USER, m.AddStrategy(strategy="test_level_trader", strategy_id="lt"))
    await start(w, [INFY])
    await bars_of(w.e, [101.0, 102.0], token=INFY)
    entry = w.e.users[USER].signal_log[0]
    await w.e.on_outcome(fill(entry, entry["quantity"], 1))
    w.c.stop_live(USER)
    await start(w, [TCS])  # INFY left the live set while held
    runner = w.e.get(USER, "lt").runner
    assert set(runner.instances) == {INFY, TCS} and INFY in w.e.users[USER].subscribed
    await bars_of(w.e, [99.0, 98.0], first_bar=10, token=INFY)
    exit_ = w.e.users[USER].signal_log[0]
    assert (exit_["tradingsymbol"], exit_["intent"], exit_["quantity"]) == ("INFY", "exit", entry["quantity"])
    await w.e.on_outcome(fill(exit_, 0, 2))
    await bars_of(w.e, [101.0, 102.0], first_bar=20, token=INFY)  # flat: retired, no new entry on INFY
    assert set(runner.instances) == {TCS} and w.e.users[USER].signal_log[0]["id"] == exit_["id"]


async def test_a_following_equity_strategy_trades_one_symbol_per_instrument(bus, data_dir):
    """Live on NIFTY 50 and its future, a following EMA would run two instances on one position."""
    w = Worker(bus, data_dir)
    w.e.exchange_now = OPEN  # the kit's day: its NIFTY future is the nearest
    add(w, "follow")
    reply = await start(w, [NIFTY, NIFTY_FUT, INFY])
    assert listed(w)["follow"]["tokens"] == [NIFTY, INFY]
    assert reply.data["skipped"] == [{"strategy_id": "follow", "token": NIFTY_FUT, "symbol": "NIFTY26DECFUT",
                                      "reason": "NIFTY 50 trades NIFTY26DECFUT already"}]
