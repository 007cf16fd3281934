"""Strategy positions rebuilt from the execution worker's journal when a worker takes a user over
(a restart, a partition moving): the journal's fills are the truth, the snapshot only a cache. If
the execution worker does not answer, the snapshot stands and the outcome stream (durable, resumed
from its ack floor) brings the books up to date."""

from __future__ import annotations

import logging
from collections import defaultdict

from shared import messages as m
from shared import subjects
from strategy_worker.engine import StrategyEngine

log = logging.getLogger("kta.strategy")


async def adopt_journal(engine: StrategyEngine, user_id: str, timeout: float = 10.0) -> bool:
    try:
        reply = await engine.bus.request(subjects.cmd(user_id, "execution", "strategy_positions"),
                                         m.GetStrategyPositions(), timeout=timeout)
    except Exception as e:  # noqa: BLE001 - no execution worker yet
        log.warning("journal positions unavailable (%r): keeping the snapshot", e, extra={"user_id": user_id})
        return False
    if not isinstance(reply, m.Ok) or not isinstance(reply.data, dict):
        log.warning("journal positions refused: %s", reply, extra={"user_id": user_id})
        return False
    rows = defaultdict(list)
    for row in reply.data.get("positions", []):
        rows[row["strategy_id"]].append(row)
    seq = int(reply.data.get("seq", 0))
    for r in engine.of_user(user_id):
        r.runner.adopt(rows.get(r.strategy_id, []), seq)
        engine.persist(r)
    log.info("strategy positions adopted from the journal (seq %d)", seq, extra={"user_id": user_id})
    return True
