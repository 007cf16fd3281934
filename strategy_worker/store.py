"""Strategy instances and their snapshots in SQLite, so a restarted worker resumes each strategy
with its books (positions from fills, signals in flight) instead of entering again, and resumes
live trading for users who were live. A strategy id is the user's own: the key is (user, id)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sqlite_utils

from shared import dblock

COLUMNS = {"user_id": str, "strategy_id": str, "name": str, "params": str, "tokens": str, "snapshot": str,
           "status": str, "error": str}
KEY = ("user_id", "strategy_id")


class StrategyStore:
    def __init__(self, path: str | Path) -> None:
        self.db = sqlite_utils.Database(path)
        with dblock.opening(path):  # copies of the worker may share the file (shared/dblock.py)
            self.db.enable_wal()
            table = self.db["strategies"]
            if table.exists() and table.pks != list(KEY):  # ids were global before
                table.transform(pk=KEY)
            table.create(COLUMNS, pk=KEY, if_not_exists=True)
            self.db["live"].create({"user_id": str, "tokens": str, "mode": str}, pk="user_id", if_not_exists=True)

    def save(self, user_id: str, strategy_id: str, name: str, params: dict, tokens: list[int], snapshot: dict,
             status: str, error: str = "") -> None:
        self.db["strategies"].upsert({"user_id": user_id, "strategy_id": strategy_id, "name": name,
                                      "params": json.dumps(params), "tokens": json.dumps(tokens),
                                      "snapshot": json.dumps(snapshot), "status": status, "error": error}, pk=KEY)

    def remove(self, user_id: str, strategy_id: str) -> None:
        self.db["strategies"].delete_where("user_id = ? AND strategy_id = ?", [user_id, strategy_id])

    def all(self) -> list[dict[str, Any]]:
        return [{**r, "params": json.loads(r["params"]), "tokens": json.loads(r["tokens"]),
                 "snapshot": json.loads(r["snapshot"])} for r in self.db["strategies"].rows]

    def set_live(self, user_id: str, tokens: list[int] | None, mode: str = "quote") -> None:
        if tokens is None:
            self.db["live"].delete_where("user_id = ?", [user_id])
        else:
            self.db["live"].upsert({"user_id": user_id, "tokens": json.dumps(tokens), "mode": mode}, pk="user_id")

    def live_users(self) -> dict[str, tuple[list[int], str]]:
        return {r["user_id"]: (json.loads(r["tokens"]), r["mode"]) for r in self.db["live"].rows}
