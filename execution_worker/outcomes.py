"""What became of a strategy's signals, told to the strategy worker: every outcome is journaled once
(its seq is the journal row id, so a user's outcomes are ordered) and published on the durable
``kta.u.<user>.outcomes`` with a message id, so a retry is never a second outcome. The stream's ack is not
awaited (``shared/store_later.py``: one it did not store is published again; the journal is told again on start).
``position`` is the strategy's net quantity in the instrument from the journaled fills at that moment."""

from __future__ import annotations

import logging
import time

from execution_worker.journal import Journal
from shared import store_later, subjects
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
        # its ack not awaited (store_later: checked when it comes, published again if the stream did not store it)
        await store_later.store(self.bus, subjects.outcomes(self.user_id), out, msg_id=f"{self.user_id}:{key}")
        log.info("outcome %s %s %s position %s", kind, strategy_id, tradingsymbol, quantity,
                 extra={"user_id": self.user_id})
        return out


    async def recover(self, republish: int = 200) -> int:
        """After a crash. A fill journaled whose outcome was not (killed in between) gets it now, and
        the last ``republish`` outcomes go out again: one journaled but never published reaches the
        strategy; the stream drops a message id it has seen, a strategy's book a seq it has applied.
        Returns how many fills had lost their outcome."""
        last = self.journal.last_outcome_seq(self.user_id)
        keys = {r["key"] for r in self.journal.outcomes(self.user_id, after_seq=max(0, last - 10_000), limit=10_000)}
        lost = 0
        for t in self.journal.trades(self.user_id):
            key = f"fill:{t['order_id']}:{t['trade_id']}"
            if not t["strategy_id"] or key in keys or t["order_id"].startswith(("external:", "expiry:")):
                continue
            order = self.journal.order_by_id(t["order_id"]) or {}
            await self.emit(key, kind="protective_fill" if order.get("kind") in ("stop_loss", "target") else "filled",
                            strategy_id=t["strategy_id"], signal_id=t["signal_id"], group_id=t["group_id"],
                            order_kind=order.get("kind", ""), exchange=t["exchange"], tradingsymbol=t["tradingsymbol"],
                            instrument_token=t["instrument_token"], transaction_type=t["transaction_type"],
                            quantity=t["quantity"], price=t["price"], trade_id=t["trade_id"])
            lost += 1
        if lost:
            log.warning("%d fills had no outcome (a crash between journaling and telling): told now", lost,
                        extra={"user_id": self.user_id})
        for r in self.journal.outcomes(self.user_id, after_seq=max(0, self.journal.last_outcome_seq(self.user_id)
                                                                    - republish)):
            fields = {k: r[k] for k in StrategyOutcome.__struct_fields__ if k in r and k not in ("user_id", "ts")}
            out = StrategyOutcome(**{**fields, "user_id": self.user_id, "seq": r["id"], "ts": time.time_ns(),
                                     "transaction_type": TransactionType(r["transaction_type"])
                                     if r["transaction_type"] else None})
            await self.bus.js_publish(subjects.outcomes(self.user_id), out, msg_id=f"{self.user_id}:{r['key']}")
        return lost


def strategy_positions(journal: Journal, user_id: str, strategy_id: str = "") -> dict:
    """Every strategy's positions rebuilt from the journaled fills (a restarted strategy worker)."""
    seq = journal.last_outcome_seq(user_id)
    tracker = PositionTracker.from_trades(journal.trades(user_id))
    return {"seq": seq, "positions": [
        {"strategy_id": p.strategy_id, "instrument_token": p.instrument_token, "exchange": p.exchange,
         "tradingsymbol": p.tradingsymbol, "product": p.product, "quantity": p.quantity,
         "average_price": p.average_price}
        for p in tracker.positions() if p.strategy_id and (not strategy_id or p.strategy_id == strategy_id)]}
