"""What became of a strategy's signals, told to the strategy worker: every outcome is journaled once
(its seq is the journal row id, so a user's outcomes are ordered) and published on the durable
``kta.u.<user>.outcomes`` with a message id, so a retry is never a second outcome. ``position`` is
the strategy's net quantity in the instrument from the journaled fills at that moment."""

from __future__ import annotations

import logging
import time

from execution_worker.journal import Journal
from shared import subjects
from shared.bus import Bus
from shared.messages import StrategyOutcome, TransactionType
from shared.trading.positions import PositionTracker

log = logging.getLogger("kta.outcomes")


class Outcomes:
    def __init__(self, bus: Bus, journal: Journal, user_id: str, tracker: PositionTracker) -> None:
        self.bus = bus
        self.journal = journal
        self.user_id = user_id
        self.tracker = tracker

    async def emit(self, key: str, *, strategy_id: str, kind: str, exchange: str = "", tradingsymbol: str = "",
                   transaction_type: TransactionType | str | None = None, **fields) -> StrategyOutcome | None:
        """Journal and publish one outcome (``key`` makes it once-only). Nothing without a strategy."""
        if not strategy_id:
            return None
        quantity, average = self.tracker.held(strategy_id, exchange, tradingsymbol) if tradingsymbol else (0, 0)
        side = TransactionType(transaction_type) if transaction_type else None
        row = {"strategy_id": strategy_id, "kind": kind, "exchange": exchange, "tradingsymbol": tradingsymbol,
               "transaction_type": side.value if side else "", "position": quantity, "average_price": average,
               **fields}
        seq = self.journal.record_outcome(self.user_id, key, row)
        out = StrategyOutcome(user_id=self.user_id, seq=seq, ts=time.time_ns(), strategy_id=strategy_id, kind=kind,
                              exchange=exchange, tradingsymbol=tradingsymbol, transaction_type=side,
                              position=quantity, average_price=average, **fields)
        await self.bus.js_publish(subjects.outcomes(self.user_id), out, msg_id=f"{self.user_id}:{key}")
        log.info("outcome %s %s %s position %s", kind, strategy_id, tradingsymbol, quantity,
                 extra={"user_id": self.user_id})
        return out


def strategy_positions(journal: Journal, user_id: str, strategy_id: str = "") -> dict:
    """Every strategy's positions rebuilt from the journaled fills (a restarted strategy worker)."""
    seq = journal.last_outcome_seq(user_id)
    tracker = PositionTracker.from_trades(journal.trades(user_id))
    return {"seq": seq, "positions": [
        {"strategy_id": p.strategy_id, "instrument_token": p.instrument_token, "exchange": p.exchange,
         "tradingsymbol": p.tradingsymbol, "product": p.product, "quantity": p.quantity,
         "average_price": p.average_price}
        for p in tracker.positions() if p.strategy_id and (not strategy_id or p.strategy_id == strategy_id)]}
