"""Gateway login sessions (not the broker's: those are ``shared.broker_sessions``).

The browser holds a random 256-bit token in the ``kta_session`` cookie; the server keeps only its
SHA-256 hash, the user, the expiry and the session's CSRF token. Sessions are revocable one by one
(logout) or all of a user's at once."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from shared.secrets import hash_secret, new_token
from shared.sqlite import Database

COOKIE = "kta_session"


@dataclass(frozen=True)
class Login:
    user_id: str
    token_hash: str
    csrf_token: str
    expires_at: float


class LoginStore:
    def __init__(self, db: Database, days: int, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.days = days
        self.clock = clock
        if "logins" not in db.table_names():
            db["logins"].create({"token_hash": str, "user_id": str, "csrf_token": str, "created_at": float,
                                 "expires_at": float, "revoked": int}, pk="token_hash")
            db["logins"].create_index(["user_id"])

    def create(self, user_id: str) -> tuple[str, Login]:
        """A new session: (the cookie token, the stored login)."""
        token = new_token(32)
        now = self.clock()
        login = Login(user_id, hash_secret(token), new_token(32), now + self.days * 86400)
        self.db["logins"].insert({"token_hash": login.token_hash, "user_id": user_id, "csrf_token": login.csrf_token,
                                  "created_at": now, "expires_at": login.expires_at, "revoked": 0})
        return token, login

    def lookup(self, token: str | None) -> Login | None:
        if not token or len(token) > 128:
            return None
        # one plain statement on every request: sqlite-utils' rows_where first looks the table up in the schema,
        # its query() wraps the SELECT in a savepoint (three statements)
        row = self.db.execute("SELECT token_hash, user_id, csrf_token, expires_at FROM logins "
                              "WHERE token_hash = ? AND revoked = 0", [hash_secret(token)]).fetchone()
        if row is None or row[3] <= self.clock():
            return None
        token_hash, user_id, csrf_token, expires_at = row
        return Login(user_id, token_hash, csrf_token, expires_at)

    def active(self, token_hashes: set[str]) -> set[str]:
        """Those of the sessions that are still valid (not revoked, not expired), in one query."""
        wanted, now, alive = sorted(token_hashes), self.clock(), set()
        for i in range(0, len(wanted), 500):  # SQLite bounds the parameters of one statement
            chunk = wanted[i:i + 500]
            rows = self.db.execute(f"SELECT token_hash FROM logins WHERE revoked = 0 AND expires_at > ? "
                                   f"AND token_hash IN ({','.join('?' * len(chunk))})", [now, *chunk]).fetchall()
            alive |= {r[0] for r in rows}
        return alive

    def revoke(self, token_hash: str) -> None:
        with self.db.conn:
            self.db.execute("UPDATE logins SET revoked = 1 WHERE token_hash = ?", [token_hash])

    def revoke_token(self, token: str | None) -> None:
        if token:
            self.revoke(hash_secret(token))

    def revoke_user(self, user_id: str) -> None:
        with self.db.conn:
            self.db.execute("UPDATE logins SET revoked = 1 WHERE user_id = ?", [user_id])

    def purge_expired(self) -> None:
        with self.db.conn:
            self.db.execute("DELETE FROM logins WHERE expires_at <= ? OR revoked = 1", [self.clock()])
