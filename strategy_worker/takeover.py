"""A partition of users changing workers (shared/partition.py): the worker that acquires one restores
its users' strategies from the store, adopts their positions from the execution worker's journal
(strategy_worker/positions.py) and resumes the live sessions they had; the worker that releases it
saves and forgets them."""

from __future__ import annotations

from shared import partition
from strategy_worker.commands import StrategyCommands
from strategy_worker.engine import StrategyEngine
from strategy_worker.positions import adopt_journal


def _users(engine: StrategyEngine, p: int) -> set[str]:
    return {r.user_id for r in engine.running.values() if partition.of(r.user_id) == p}


async def acquire(engine: StrategyEngine, commands: StrategyCommands, p: int) -> None:
    engine.restore(only=lambda user_id: partition.of(user_id) == p)
    for user_id in _users(engine, p):
        engine.bus.spawn(adopt_journal(engine, user_id), name=f"journal-positions:{user_id}")
    for user_id, (tokens, mode) in engine.store.live_users().items():
        if partition.of(user_id) == p:
            engine.bus.spawn(commands.start_live(user_id, tokens, mode), name=f"resume:{user_id}")


async def release(engine: StrategyEngine, p: int) -> None:
    for user_id in _users(engine, p):
        engine.forget(user_id)
