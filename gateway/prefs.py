"""Per-user dashboard preferences in ``gateway.db``: the theme (dark or light) and whether the keyboard
shortcuts are on. Remembered per user, so they follow the trader from browser to browser; the page
renders with them (no flash of the wrong theme). Also the symbols of the trader's last Start: after a
Stop (and a reload, another browser, a gateway restart) the desk shows them picked, ready to Start again."""

from __future__ import annotations

from typing import Literal

import time

import msgspec

from shared.sqlite import Database

Theme = Literal["dark", "light"]


class Prefs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    theme: Theme = "dark"
    shortcuts: bool = True


class PrefsStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        if "user_prefs" not in db.table_names():
            db["user_prefs"].create({"user_id": str, "prefs": str}, pk="user_id")
        if "last_symbols" not in db.table_names():
            db["last_symbols"].create({"user_id": str, "tokens": str, "at": float}, pk="user_id")

    def get(self, user_id: str) -> Prefs:
        # plain statements (every page asks): sqlite-utils' query() wraps a SELECT in a savepoint
        row = self.db.execute("SELECT prefs FROM user_prefs WHERE user_id = ?", [user_id]).fetchone()
        if row is None or not row[0]:
            return Prefs()
        try:
            return msgspec.json.decode(row[0], type=Prefs)
        except (msgspec.DecodeError, msgspec.ValidationError):  # an older or damaged row: the defaults
            return Prefs()

    def set(self, user_id: str, prefs: Prefs) -> Prefs:
        self.db["user_prefs"].upsert({"user_id": user_id, "prefs": msgspec.json.encode(prefs).decode()},
                                     pk="user_id", alter=False)
        return prefs

    def last_symbols(self, user_id: str) -> list[int]:
        """The instrument tokens of the user's last Start (none before the first)."""
        row = self.db.execute("SELECT tokens FROM last_symbols WHERE user_id = ?", [user_id]).fetchone()
        try:
            return msgspec.json.decode(row[0], type=list[int]) if row else []
        except (msgspec.DecodeError, msgspec.ValidationError):
            return []

    def remember_symbols(self, user_id: str, tokens: list[int]) -> None:
        with self.db.conn:
            self.db.execute("INSERT OR REPLACE INTO last_symbols (user_id, tokens, at) VALUES (?, ?, ?)",
                            [user_id, msgspec.json.encode(list(tokens)).decode(), time.time()])
