"""Strategy positions rebuilt from the execution worker's journal when a worker takes a user over
(a restart, a partition moving): the journal's fills are the truth, the snapshot only a cache. The
execution worker may start after this one (``kta up`` starts the strategy worker first), so the
question is asked again until it answers; meanwhile the snapshot stands, and the outcome stream
(durable, resumed from its ack floor) keeps the books moving."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

from shared import messages as m
from shared import subjects
from strategy_worker.engine import StrategyEngine

log = logging.getLogger("kta.strategy")
ASK_EVERY = 2.0  # seconds between attempts while the execution worker does not answer
ASK_FOR = 120.0  # then the snapshot stays (logged); the next takeover or restart asks again


async def adopt_journal(engine: StrategyEngine, user_id: str, timeout: float = 5.0) -> bool:
    for _ in range(int(ASK_FOR / (ASK_EVERY + timeout)) + 1):
        try:
            reply = await engine.bus.request(subjects.cmd(user_id, "execution", "strategy_positions"),
                                             m.GetStrategyPositions(), timeout=timeout)
        except Exception:  # noqa: BLE001 - no execution worker (yet)
            await asyncio.sleep(ASK_EVERY)
            continue
        if not isinstance(reply, m.Ok) or not isinstance(reply.data, dict):
            log.warning("journal positions refused: %s", reply, extra={"user_id": user_id})
            return False
        adopt(engine, user_id, reply.data)
        return True
    log.warning("no execution worker answered for %.0f s: positions stay as the snapshot has them", ASK_FOR,
                extra={"user_id": user_id})
    return False


def adopt(engine: StrategyEngine, user_id: str, data: dict) -> None:
    rows = defaultdict(list)
    for row in data.get("positions", []):
        rows[row["strategy_id"]].append(row)
    seq = int(data.get("seq", 0))
    for r in engine.of_user(user_id):
        r.runner.adopt(rows.get(r.strategy_id, []), seq)
        engine.persist(r)
    log.info("strategy positions adopted from the journal (seq %d)", seq, extra={"user_id": user_id})
