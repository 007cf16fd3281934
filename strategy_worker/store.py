"""Strategies, their instances' books and live users in SQLite, so a restarted worker resumes each
strategy instance with its book (position from fills, signals in flight) instead of entering again,
and resumes live trading for users who were live. A strategy id is the user's own: the key is
(user, id); each (strategy, symbol) instance has its own row, written alone after its signals and
outcomes (one small statement, not the whole strategy). A strategy added without symbols ``follows``
the live symbols: its ``tokens`` are then only those of its last Start."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shared import dblock
from shared.sqlite import Database

STRATEGY = {"user_id": str, "strategy_id": str, "name": str, "params": str, "tokens": str, "snapshot": str,
            "status": str, "error": str, "follows": int}
INSTANCE = {"user_id": str, "strategy_id": str, "token": int, "snapshot": str}
KEY = ("user_id", "strategy_id")


def _upsert(table: str, columns: dict) -> str:
    return f"INSERT OR REPLACE INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


class StrategyStore:
    def __init__(self, path: str | Path) -> None:
        self.db = Database(path)
        with dblock.opening(path):  # copies of the worker may share the file (shared/dblock.py)
            self.db.enable_wal()
            self.db.execute("PRAGMA synchronous=NORMAL")  # WAL: a process crash loses nothing committed
            table = self.db["strategies"]
            if table.exists() and table.pks != list(KEY):  # ids were global before
                table.transform(pk=KEY)
            if table.exists() and "follows" not in table.columns_dict:
                # a store from before: only a strategy still without symbols is known to have been added
                # without them (one added without them while live was given that moment's symbols)
                table.add_column("follows", int, not_null_default=0)
                self.db.execute("UPDATE strategies SET follows = 1 WHERE tokens = '[]'")
                self.db.conn.commit()
            table.create(STRATEGY, pk=KEY, if_not_exists=True)
            self.db["instances"].create(INSTANCE, pk=(*KEY, "token"), if_not_exists=True)
            self.db["live"].create({"user_id": str, "tokens": str, "mode": str}, pk="user_id", if_not_exists=True)

    def save(self, user_id: str, strategy_id: str, name: str, params: dict, tokens: list[int], snapshot: dict,
             status: str, error: str = "", follows: bool = False) -> None:
        """The whole strategy: ``snapshot`` is the runner's (its ``symbols`` go to their own rows; the
        rows of symbols it no longer has are deleted, so a restart does not bring them back)."""
        rest = {k: v for k, v in snapshot.items() if k != "symbols"}
        symbols = snapshot.get("symbols", {})
        with self.db.conn:
            self.db.conn.execute(_upsert("strategies", STRATEGY), (
                user_id, strategy_id, name, json.dumps(params), json.dumps(tokens), json.dumps(rest), status, error,
                int(follows)))
            self.db.conn.execute(
                f"DELETE FROM instances WHERE user_id = ? AND strategy_id = ? AND token NOT IN "
                f"({', '.join('?' * len(symbols))})", (user_id, strategy_id, *map(int, symbols)))
            self.db.conn.executemany(_upsert("instances", INSTANCE), [
                (user_id, strategy_id, int(t), json.dumps(s)) for t, s in symbols.items()])

    def save_instance(self, user_id: str, strategy_id: str, token: int, snapshot: dict) -> None:
        with self.db.conn:
            self.db.conn.execute(_upsert("instances", INSTANCE), (user_id, strategy_id, token, json.dumps(snapshot)))

    def remove(self, user_id: str, strategy_id: str) -> None:
        with self.db.conn:
            for table in ("strategies", "instances"):
                self.db.conn.execute(f"DELETE FROM {table} WHERE user_id = ? AND strategy_id = ?", (user_id, strategy_id))

    def all(self) -> list[dict[str, Any]]:
        symbols: dict[tuple[str, str], dict[str, Any]] = {}
        for r in self.db["instances"].rows:
            symbols.setdefault((r["user_id"], r["strategy_id"]), {})[str(r["token"])] = json.loads(r["snapshot"])
        out = []
        for r in self.db["strategies"].rows:
            snapshot = json.loads(r["snapshot"])
            if (r["user_id"], r["strategy_id"]) in symbols or "orphans" in snapshot:
                snapshot["symbols"] = symbols.get((r["user_id"], r["strategy_id"]), {})
            out.append({**r, "params": json.loads(r["params"]), "tokens": json.loads(r["tokens"]), "snapshot": snapshot})
        return out

    def set_live(self, user_id: str, tokens: list[int] | None, mode: str = "quote") -> None:
        if tokens is None:
            self.db["live"].delete_where("user_id = ?", [user_id])
        else:
            self.db["live"].upsert({"user_id": user_id, "tokens": json.dumps(tokens), "mode": mode}, pk="user_id")

    def live_users(self) -> dict[str, tuple[list[int], str]]:
        return {r["user_id"]: (json.loads(r["tokens"]), r["mode"]) for r in self.db["live"].rows}
