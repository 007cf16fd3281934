"""Per-user dashboard preferences in ``gateway.db``: the theme (dark or light) and whether the keyboard
shortcuts are on. Remembered per user, so they follow the trader from browser to browser; the page
renders with them (no flash of the wrong theme)."""

from __future__ import annotations

from typing import Literal

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

    def get(self, user_id: str) -> Prefs:
        row = self._row(user_id)
        if row is None or not row["prefs"]:
            return Prefs()
        try:
            return msgspec.json.decode(row["prefs"], type=Prefs)
        except (msgspec.DecodeError, msgspec.ValidationError):  # an older or damaged row: the defaults
            return Prefs()

    def set(self, user_id: str, prefs: Prefs) -> Prefs:
        self.db["user_prefs"].upsert({"user_id": user_id, "prefs": msgspec.json.encode(prefs).decode()},
                                     pk="user_id", alter=False)
        return prefs

    def _row(self, user_id: str) -> dict | None:
        rows = list(self.db.query("SELECT * FROM user_prefs WHERE user_id = ?", [user_id]))
        return rows[0] if rows else None
