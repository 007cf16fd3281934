"""The execution journal: every signal, risk decision, order, order event, fill, group and risk event
of every user, in one SQLite file (WAL), so any order can be explained after the fact. This module
writes it; execution_worker/journal_reads.py has its questions.

Money is integer paise. Each row carries ``day``, the IST trading day (yyyy-mm-dd) it belongs to.
Writes are idempotent: signals on their id, orders on their kta tag, events on
(order_id, status, filled_quantity, exchange_timestamp), trades on (order_id, trade_id).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from execution_worker.journal_reads import JournalReads
from execution_worker.journal_schema import INDEXES, SCHEMA, defaults
from shared import dblock, metrics
from shared.kite.models import Instrument
from shared.messages import OrderEvent, Signal, SignalGroup
from shared.sqlite import Database
from shared.trading.order import Order
from shared.trading.protection import Protection
from shared.wal import Checkpoints

# Signal decisions: anything other than ACCEPTED is a refusal (its code says why).
ACCEPTED = "accepted"
REFUSED = "refused"

GROUP_STATES = frozenset({"placing", "completed", "rolled_back", "needs_attention"})


class Journal(JournalReads):
    """The SQLite journal: this class writes, ``JournalReads`` (execution_worker/journal_reads.py) asks.
    ``clock`` returns epoch seconds (injected by tests to pin the IST day); ``day_clock``, when given, is
    the clock whose IST day the rows' ``day`` follows (the worker's: the exchange's, shared/exchange_clock.py),
    while their times stay the machine's."""

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time,
                 day_clock: Callable[[], float] | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.clock = clock
        self.day_clock = day_clock or clock
        # One connection, usable from worker threads too (sqlite serialises it); WAL with
        # synchronous=NORMAL survives a killed process, only a power cut can lose the last commits.
        self.conn = sqlite3.connect(self.path, check_same_thread=False)
        self.db = Database(self.conn)
        self._sql: dict[tuple, str] = {}  # the hot path's statements, built once (see _insert, _upsert)
        self._holder = 0  # the thread inside ``together`` (its writes commit at its end), 0: none
        self._contracts: set[str] = set()  # "EXCHANGE:SYMBOL" remembered (``remember_contract``) by this process
        self._together = threading.Lock()
        with dblock.opening(self.path):  # copies of the worker may share the file (shared/dblock.py)
            self.db.enable_wal()
            self.db.execute("PRAGMA synchronous=NORMAL")
            self._declare_schema()
        self.checkpoints = Checkpoints(self.conn, self.path)  # not inside the hot path's commits (shared/wal.py)

    def _declare_schema(self) -> None:
        for name, (columns, pk) in SCHEMA.items():
            table = self.db[name]
            if not table.exists():
                table.create(columns, pk=pk, not_null={c for c in columns if c != "id"}, defaults=defaults(columns))
                continue
            for column in columns.keys() - table.columns_dict.keys():  # a journal from an older kta
                table.add_column(column, columns[column], not_null_default=defaults(columns)[column])
        for name, indexes in INDEXES.items():
            for cols in indexes:
                self.db[name].create_index(cols, if_not_exists=True)

    def close(self) -> None:
        self.checkpoints.close()
        self.db.close()

    @contextlib.contextmanager
    def together(self):
        """The hot path's writes made inside commit as one transaction at its end: what belongs together — a
        decision and its orders, an order's row and its event — lands whole or not at all, for one commit
        instead of one each. Synchronous code only (no await inside): its end comes before anything of it
        leaves the process, so an order is still durable before its POST and an event before it is told."""
        me = threading.get_ident()
        if self._holder == me:  # nested: the outer one commits
            yield
            return
        with self._together:  # another thread's block first (microseconds: no await inside)
            self._holder = me
            try:
                with self.conn:
                    yield
            except BaseException:
                self._contracts.clear()  # one remembered inside was rolled back with the block
                raise
            finally:
                self._holder = 0
            self.checkpoints.committed()

    # ---- signals

    def record_signal(self, sig: Signal | SignalGroup, decision: str, reason: str = "", code: str = "",
                      quantities: tuple[int, ...] = ()) -> bool:
        """Journal a signal with the risk decision (and the quantities it was accepted with, when risk
        clamped them); False (and nothing written) if already recorded."""
        instrument = sig.structure if isinstance(sig, SignalGroup) else sig.tradingsymbol
        inserted = self._insert(
            "signals", {
                "id": sig.id, "user_id": sig.user_id, "day": self.today(), "ts": self.now(),
                "type": "signal_group" if isinstance(sig, SignalGroup) else "signal",
                "strategy_id": sig.strategy_id, "strategy": sig.strategy, "instrument": instrument,
                "intent": sig.intent, "decision": decision, "reason": reason, "code": code,
                "quantities": json.dumps(list(quantities)) if quantities else "",
                "payload": msgspec.json.encode(sig).decode(),
            }, ignore=True)
        if inserted is None:
            return False
        metrics.signal(decision)
        return True

    # ---- orders

    def save_order(self, order: Order, role: str = "") -> None:
        """Write the one row of a kta order (keyed on its tag) as the order book holds it now; ``role``: what a
        protective order is now (``Desk.role``)."""
        row = msgspec.to_builtins(order) | {"role": role}
        row["leg_index"] = row.pop("leg")
        row["trade_ids"] = json.dumps(row["trade_ids"])
        row["day"] = row["day"] or self.today()
        row["created_ts"] = row["created_ts"] or self.now()
        self._upsert("orders", row | {"updated_ts": self.now()}, ("tag",))

    # ---- order events

    def record_order_event(self, ev: OrderEvent) -> bool:
        """Append an event to the order's history (False if this exact event was seen)."""
        status = str(ev.status) if ev.status is not None else ""
        key = f"{ev.order_id or ev.tag}|{status}|{ev.filled_quantity}|{ev.exchange_timestamp}"
        if self._insert(
            "order_events", {
                "event_key": key, "user_id": ev.user_id, "day": self.today(), "ts": self.now(),
                "order_id": ev.order_id, "tag": ev.tag, "signal_id": ev.signal_id, "group_id": ev.group_id,
                "kind": ev.kind, "state": ev.state, "status": status, "status_message": ev.status_message,
                "quantity": ev.quantity, "filled_quantity": ev.filled_quantity,
                "pending_quantity": ev.pending_quantity, "cancelled_quantity": ev.cancelled_quantity,
                "average_price": ev.average_price, "exchange_timestamp": ev.exchange_timestamp,
                "payload": msgspec.json.encode(ev).decode(),
            }, ignore=True) is None:
            return False
        metrics.order_status(status)
        return True

    # ---- trades

    def record_trade(
        self,
        user_id: str,
        *,
        trade_id: str,
        order_id: str,
        exchange: str,
        tradingsymbol: str,
        instrument_token: int,
        transaction_type: str,
        quantity: int,
        price: int,
        fill_timestamp: str,
        product: str = "",
        strategy_id: str = "",
        signal_id: str = "",
        group_id: str = "",
    ) -> bool:
        """Journal one fill (price in paise, ``fill_timestamp`` Kite's IST "yyyy-mm-dd hh:mm:ss");
        False if this (order_id, trade_id) is already there."""
        return self._insert(
            "trades", {
                "order_id": order_id, "trade_id": trade_id, "user_id": user_id,
                "day": fill_timestamp[:10] if fill_timestamp else self.today(),
                "fill_timestamp": fill_timestamp or self.now(), "exchange": str(exchange),
                "tradingsymbol": tradingsymbol, "instrument_token": instrument_token,
                "transaction_type": str(transaction_type), "quantity": quantity, "price": price,
                "product": str(product), "strategy_id": strategy_id, "signal_id": signal_id,
                "group_id": group_id,
            }, ignore=True) is not None

    # ---- groups

    def record_group(self, group_id: str, user_id: str, *, strategy_id: str, structure: str, state: str,
                     detail: str = "") -> None:
        if state not in GROUP_STATES:
            raise ValueError(f"group state must be one of {sorted(GROUP_STATES)}, not {state!r}")
        now = self.now()
        row = {"group_id": group_id, "user_id": user_id, "strategy_id": strategy_id, "structure": structure,
               "state": state, "detail": detail, "updated_ts": now}
        if self.group(group_id) is None:
            self.db["groups"].insert(row | {"day": self.today(), "created_ts": now})
        else:
            self.db["groups"].update(group_id, row)

    # ---- risk events

    def record_risk_event(self, user_id: str, *, code: str, message: str, signal_id: str = "", state: str = "") -> None:
        self.db["risk_events"].insert(
            {"user_id": user_id, "day": self.today(), "ts": self.now(), "code": code, "message": message,
             "signal_id": signal_id, "state": state}
        )
        metrics.reject(code)

    # ---- strategy outcomes (seq = the row id: monotonic per journal, so per user)

    def record_outcome(self, user_id: str, key: str, fields: dict[str, Any]) -> int:
        """Journal an outcome once per ``key``; its seq (the existing one for a repeat)."""
        row = self._one("outcomes", "user_id = ? AND key = ?", [user_id, key])
        if row is not None:
            return row["id"]
        return self._insert("outcomes", {"key": key, "user_id": user_id, "day": self.today(), "ts": self.now(),
                                          **fields}).lastrowid

    # ---- protections (what guards each position: its stop and target)

    def save_protection(self, p: Protection) -> None:
        row = msgspec.to_builtins(p) | {"key": f"{p.user_id}|{p.key}", "retried": int(p.retried),
                                        "gtt_ids": json.dumps(p.gtt_ids),
                                        "gtt_asked": msgspec.json.encode(p.gtt_asked).decode(), "updated_ts": self.now()}
        self._upsert("protections", row, ("key",))

    # ---- kill switch state (survives a restart)

    def remember_contract(self, inst: Instrument) -> None:
        """A derivative kta trades, as the day's instrument list shows it: written once (a repeat costs a set look-up,
        not the ~28 us of CPU of an ignored insert: once for each order on a contract)."""
        key = f"{inst.exchange}:{inst.tradingsymbol}"
        if key not in self._contracts:
            self._insert("contracts", {"key": key, "instrument": msgspec.json.encode(inst).decode()}, ignore=True)
            self._contracts.add(key)

    def save_kill_switch(self, user_id: str, *, state: str, reason: str, tripped_at: int, day: str,
                         baseline: int = 0, limits: dict | None = None) -> None:
        self.db["kill_switch"].upsert(
            {"user_id": user_id, "state": state, "reason": reason, "tripped_at": tripped_at, "day": day,
             "baseline": baseline, "limits": json.dumps(limits) if limits is not None else "",
             "updated_ts": self.now()},
            pk="user_id",
        )

    # ---- daily summaries

    def save_daily_summary(self, user_id: str, day: str, summary: dict) -> None:
        self.db["daily_summaries"].upsert(
            {"user_id": user_id, "day": day, "written_ts": self.now(), "archived": 1,
             "summary": json.dumps(summary, sort_keys=True)},
            pk=("user_id", "day"),
        )

    # ---- helpers

    # The hot path's writes: plain SQL, one statement text per (table, columns) so sqlite3 keeps it
    # prepared; sqlite-utils would look the table's schema up on every call (~6 statements each).
    # Each write commits at once (an order is durably SUBMITTING before its POST), or, inside
    # ``together``, with the writes that belong with it.

    def _write(self, sql: str, values: tuple) -> sqlite3.Cursor:
        if self._holder == threading.get_ident():
            return self.conn.execute(sql, values)
        with self.conn:
            cur = self.conn.execute(sql, values)
        self.checkpoints.committed()
        return cur

    def _insert(self, table: str, row: dict, ignore: bool = False) -> sqlite3.Cursor | None:
        """Insert one row; None if ``ignore`` and the row was already there."""
        key = ("insert", table, ignore, tuple(row))
        sql = self._sql.get(key)
        if sql is None:
            cols = ", ".join(f'"{c}"' for c in row)
            sql = self._sql[key] = (f'INSERT {"OR IGNORE " if ignore else ""}INTO "{table}" ({cols}) '
                                    f'VALUES ({", ".join("?" * len(row))})')
        cur = self._write(sql, tuple(row.values()))
        return cur if cur.rowcount else None

    def _upsert(self, table: str, row: dict, pk: tuple[str, ...]) -> None:
        key = ("upsert", table, pk, tuple(row))
        sql = self._sql.get(key)
        if sql is None:
            cols = ", ".join(f'"{c}"' for c in row)
            sets = ", ".join(f'"{c}" = excluded."{c}"' for c in row if c not in pk)
            sql = self._sql[key] = (f'INSERT INTO "{table}" ({cols}) VALUES ({", ".join("?" * len(row))}) '
                                    f'ON CONFLICT ({", ".join(pk)}) DO UPDATE SET {sets}')
        self._write(sql, tuple(row.values()))
