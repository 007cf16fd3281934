"""The journal's questions: what the worker looks up (an order by tag or id, the working orders a
restart resumes, protections, the kill switch, outcomes after a seq), the day's books for the desk and
the reports, and the audit of one order. ``Journal`` (execution_worker/journal.py) writes the rows;
it is a ``JournalReads``, so a caller asks one object both."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable

import msgspec

from shared import ist
from shared.kite.models import Instrument
from shared.messages import TransactionType
from shared.sqlite import Database
from shared.trading.order import TERMINAL, Order, OrderState
from shared.trading.protection import Protection

TERMINAL_STATES = frozenset(s.value for s in TERMINAL)


class JournalReads:
    conn: sqlite3.Connection
    db: Database
    clock: Callable[[], float]
    day_clock: Callable[[], float]

    # ---- time

    def today(self) -> str:
        """The trading day the rows written now belong to (the exchange's, in the worker)."""
        return ist.day(self.day_clock())

    def now(self) -> str:
        return ist.stamp(self.clock())

    # ---- signals

    def signal_decision(self, signal_id: str) -> str | None:
        row = self._one("signals", "id = ?", [signal_id])
        return row["decision"] if row else None

    def signal(self, signal_id: str) -> dict | None:
        return self._one("signals", "id = ?", [signal_id])

    def signal_by_tag(self, user_id: str, tag: str) -> dict | None:
        """The signal (or group) whose id a kta tag was derived from, among the user's recent ones."""
        digest = tag[1:15]
        for row in self.db.query("SELECT id, type, strategy_id FROM signals WHERE user_id = ? ORDER BY ts DESC "
                                 "LIMIT 20000", [user_id]):
            if hashlib.sha1(row["id"].encode()).hexdigest()[:14] == digest:
                return row
        return None

    def signals(self, user_id: str, day: str | None = None, limit: int = 5000) -> list[dict]:
        return self._rows("signals", user_id, day, "ts", limit)

    # ---- orders

    def load_orders(self, user_id: str, since_day: str) -> list[Order]:
        """The user's orders from ``since_day`` on, and every older one not yet final."""
        marks = ",".join("?" * len(TERMINAL_STATES))
        rows = self.db["orders"].rows_where(f"user_id = ? AND (day >= ? OR state NOT IN ({marks}))",
                                            [user_id, since_day, *TERMINAL_STATES], order_by="created_ts, rowid")
        return [order_of(row) for row in rows]

    def order_by_tag(self, tag: str) -> dict | None:
        return self._one("orders", "tag = ?", [tag])

    def order_by_id(self, order_id: str) -> dict | None:
        return self._one("orders", "order_id = ?", [order_id]) if order_id else None

    def open_orders(self, user_id: str) -> list[dict]:
        marks = ",".join("?" * len(TERMINAL_STATES))
        return list(
            self.db["orders"].rows_where(
                f"user_id = ? AND state NOT IN ({marks}) AND status NOT IN ({marks})",
                [user_id, *TERMINAL_STATES, *TERMINAL_STATES],
                order_by="created_ts, rowid",
            )
        )

    def active_users(self) -> set[str]:
        """Users with a working order, a fill today or an open position (one carried from an earlier day
        included, whose GTT must be confirmed at the broker): what a restarted worker must watch at once."""
        marks = ",".join("?" * len(TERMINAL_STATES))
        rows = self.db.execute(
            f"SELECT user_id FROM orders WHERE state NOT IN ({marks}) AND status NOT IN ({marks})"
            " UNION SELECT user_id FROM trades WHERE day = ?"
            " UNION SELECT user_id FROM trades GROUP BY user_id, strategy_id, exchange, tradingsymbol, product"
            " HAVING SUM(CASE WHEN transaction_type = 'BUY' THEN quantity ELSE -quantity END) != 0",
            [*TERMINAL_STATES, *TERMINAL_STATES, self.today()]).fetchall()
        return {r[0] for r in rows}

    def orders(self, user_id: str, day: str | None = None, limit: int = 5000) -> list[dict]:
        """Oldest first: by their stamp (to the second), then as they were made (a stop and its retry of one second)."""
        return self._rows("orders", user_id, day, "created_ts, rowid", limit)

    def orders_of_signal(self, signal_id: str) -> list[dict]:
        return list(self.db["orders"].rows_where("signal_id = ?", [signal_id], order_by="created_ts, rowid"))

    def orders_of_group(self, group_id: str) -> list[dict]:
        return list(self.db["orders"].rows_where("group_id = ?", [group_id], order_by="leg_index, created_ts"))

    def order_events(self, order_id_or_tag: str) -> list[dict]:
        return list(
            self.db["order_events"].rows_where(
                "order_id = ? OR tag = ?", [order_id_or_tag, order_id_or_tag], order_by="rowid"
            )
        )

    # ---- trades

    def trades(self, user_id: str, day: str | None = None, limit: int = 100_000) -> list[dict]:
        return self._rows("trades", user_id, day, "fill_timestamp, rowid", limit)

    def trades_closing_on(self, user_id: str, day: str) -> list[dict]:
        """The fills a report of ``day`` matches: the day's, and before them the earlier fills of every
        (strategy, instrument) still open when the day began — so a carried position's closing fill closes
        its own lots (at their entry prices) instead of reading as a new position the other way."""
        open_keys = ("SELECT strategy_id, exchange, tradingsymbol FROM trades WHERE user_id = ? AND day < ? "
                     "GROUP BY strategy_id, exchange, tradingsymbol "
                     "HAVING SUM(CASE WHEN transaction_type = 'BUY' THEN quantity ELSE -quantity END) != 0")
        cursor = self.db.execute(
            "SELECT * FROM trades WHERE user_id = ? AND (day = ? OR (day < ? AND "
            f"(strategy_id, exchange, tradingsymbol) IN ({open_keys}))) ORDER BY fill_timestamp, rowid",
            [user_id, day, day, user_id, day])
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]

    def trade_count(self, user_id: str) -> int:
        """How many fills the user has journaled (a count, not a read of every row)."""
        return self.db.execute("SELECT COUNT(*) FROM trades WHERE user_id = ?", [user_id]).fetchone()[0]

    def trades_of_order(self, order_id: str) -> list[dict]:
        return list(self.db["trades"].rows_where("order_id = ?", [order_id], order_by="fill_timestamp, rowid"))

    # ---- groups and risk events

    def group(self, group_id: str) -> dict | None:
        return self._one("groups", "group_id = ?", [group_id])

    def groups(self, user_id: str, day: str | None = None, limit: int = 5000) -> list[dict]:
        return self._rows("groups", user_id, day, "created_ts", limit)

    def risk_events(self, user_id: str, day: str | None = None, limit: int = 5000) -> list[dict]:
        return self._rows("risk_events", user_id, day, "id", limit)

    # ---- strategy outcomes (seq = the row id: monotonic per journal, so per user)

    def outcomes(self, user_id: str, after_seq: int = 0, limit: int = 10_000) -> list[dict]:
        return list(self.db["outcomes"].rows_where("user_id = ? AND id > ?", [user_id, after_seq], order_by="id",
                                                   limit=limit))

    def last_outcome_seq(self, user_id: str) -> int:
        row = next(iter(self.db.query("SELECT MAX(id) AS seq FROM outcomes WHERE user_id = ?", [user_id])), None)
        return (row or {}).get("seq") or 0

    # ---- protections and the kill switch (what a restarted worker resumes with)

    def protections(self, user_id: str) -> list[Protection]:
        rows = self.db["protections"].rows_where("user_id = ?", [user_id])
        return [msgspec.convert({f: r[f] for f in Protection.__struct_fields__}
                                | {"retried": bool(r["retried"]), "gtt_ids": json.loads(r["gtt_ids"] or "[]"),
                                   "gtt_asked": json.loads(r["gtt_asked"] or "[]")},
                                Protection) for r in rows]

    def contract(self, exchange: str, tradingsymbol: str) -> Instrument | None:
        """A derivative a position of kta's held (``Journal.remember_contract``), listed or long expired."""
        row = self._one("contracts", "key = ?", [f"{exchange}:{tradingsymbol}"])
        return msgspec.json.decode(row["instrument"], type=Instrument) if row is not None else None

    def kill_switch(self, user_id: str) -> dict | None:
        row = self._one("kill_switch", "user_id = ?", [user_id])
        if row is not None:
            row["limits"] = json.loads(row["limits"]) if row["limits"] else None
        return row

    # ---- daily summaries

    def daily_summary(self, user_id: str, day: str) -> dict | None:
        row = self._one("daily_summaries", "user_id = ? AND day = ?", [user_id, day])
        return json.loads(row["summary"]) if row else None

    def summarised_days(self, user_id: str) -> list[str]:
        return [r["day"] for r in self.db["daily_summaries"].rows_where("user_id = ?", [user_id], order_by="day")]

    def trading_days(self, user_id: str) -> list[str]:
        """Days with any journal activity for the user, oldest first."""
        days: set[str] = set()
        for table in ("signals", "orders", "trades", "risk_events"):
            days |= {r[0] for r in self.db.execute(f"SELECT DISTINCT day FROM {table} WHERE user_id = ?", [user_id])}
        return sorted(days)

    # ---- audit

    def audit(self, order_id_or_signal_id: str) -> dict:
        """Why an order was placed and what happened to it: signal → risk decision → group → orders
        (with their events and fills). Accepts a signal id, a group id, a broker order id or a tag."""
        key = order_id_or_signal_id
        signal = self.signal(key)
        if signal is None and self.group(key) is None:
            order = self.order_by_id(key) or self.order_by_tag(key)
            if order is None:
                return {}
            key = order["signal_id"] or order["group_id"]
            signal = self.signal(key) if key else None
        orders = self._orders_of(key) if key else [order]
        group_id = next((o["group_id"] for o in orders if o["group_id"]), "")
        return {
            "signal": signal,
            "risk_events": list(self.db["risk_events"].rows_where("signal_id = ?", [key])) if key else [],
            "group": self.group(group_id) if group_id else None,
            "orders": [
                o | {"events": self.order_events(o["order_id"] or o["tag"]),
                     "trades": self.trades_of_order(o["order_id"]) if o["order_id"] else []}
                for o in orders
            ],
        }

    def _orders_of(self, signal_or_group_id: str) -> list[dict]:
        return list(self.db["orders"].rows_where("signal_id = ? OR group_id = ?", [signal_or_group_id] * 2,
                                                 order_by="created_ts, rowid"))

    # ---- helpers

    def _one(self, table: str, where: str, args: list) -> dict | None:
        cur = self.conn.execute(f'SELECT * FROM "{table}" WHERE {where} LIMIT 1', args)
        row = cur.fetchone()
        return dict(zip([d[0] for d in cur.description], row)) if row is not None else None

    def _rows(self, table: str, user_id: str, day: str | None, order_by: str, limit: int) -> list[dict]:
        if day:
            return list(self.db[table].rows_where("user_id = ? AND day = ?", [user_id, day], order_by=order_by, limit=limit))
        return list(self.db[table].rows_where("user_id = ?", [user_id], order_by=order_by, limit=limit))


def order_of(row: dict) -> Order:
    """A journal row back into the order book's Order."""
    fields = {f: row[f] for f in Order.__struct_fields__ if f in row and f not in ("leg", "trade_ids")}
    return Order(**fields | {"leg": row["leg_index"], "trade_ids": json.loads(row["trade_ids"] or "[]"),
                             "state": OrderState(row["state"]),
                             "transaction_type": TransactionType(row["transaction_type"])})
