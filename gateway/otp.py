"""Email one-time passwords and the brakes on guessing them.

* A code is 6 digits from ``secrets``, valid ``ttl`` seconds, single use, stored only as a salted
  SHA-256 hash; a new code replaces the old one.
* Asking for a code is throttled per (ID, email) pair as asked, whether or not the pair is an account
  (``RESEND_SECONDS``), so the throttle tells nothing about which pairs exist.
* A code survives ``MAX_CODE_ATTEMPTS`` wrong guesses in all, then dies (the owner asks for a new one).
* Wrong guesses lock out the *guesser*, never the account: failures are counted per client address and
  per (ID, address) in a sliding window; past the limit that key is locked for ``LOCKOUT_SECONDS``. A
  stranger guessing at an account from elsewhere cannot keep its owner out.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

from shared.secrets import hash_secret, same
from shared.sqlite import Database

RESEND_SECONDS = 30
MAX_CODE_ATTEMPTS = 5
FAILURE_WINDOW = 15 * 60
LOCKOUT_SECONDS = 15 * 60
LIMITS = {"idip": 5, "ip": 20}  # failures within the window before a lockout


class Throttled(Exception):
    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)


class OtpStore:
    def __init__(self, db: Database, ttl: int, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.ttl = ttl
        self.clock = clock
        if "otps" not in db.table_names():
            db["otps"].create({"zerodha_id": str, "code_hash": str, "salt": str, "sent_at": float,
                               "expires_at": float, "attempts": int}, pk="zerodha_id")
        if "otp_requests" not in db.table_names():
            db["otp_requests"].create({"pair": str, "asked_at": float}, pk="pair")
        if "auth_failures" not in db.table_names():
            db["auth_failures"].create({"key": str, "failures": int, "window_start": float, "locked_until": float},
                                       pk="key")

    # ---- lockouts -----------------------------------------------------------------------------

    @staticmethod
    def guesser_keys(zerodha_id: str, address: str) -> tuple[str, str]:
        """The keys a wrong guess counts against: the address, and the (ID, address) pair."""
        return f"ip:{address}", f"idip:{zerodha_id}|{address}"

    def check_lock(self, *keys: str) -> None:
        """Raise Throttled if any of ``keys`` (``ip:…``, ``idip:…|…``) is locked out."""
        now = self.clock()
        for key in keys:
            row = self._failures(key)
            if row and row["locked_until"] > now:
                raise Throttled("too many failed attempts: try again later", int(row["locked_until"] - now))

    def fail(self, *keys: str) -> None:
        now = self.clock()
        for key in keys:
            row = self._failures(key) or {"key": key, "failures": 0, "window_start": now, "locked_until": 0.0}
            if now - row["window_start"] > FAILURE_WINDOW:
                row.update(failures=0, window_start=now)
            row["failures"] += 1
            if row["failures"] >= LIMITS[key.split(":", 1)[0]]:
                row.update(locked_until=now + LOCKOUT_SECONDS, failures=0, window_start=now)
            self.db["auth_failures"].upsert(row, pk="key")

    def clear(self, key: str) -> None:
        with self.db.conn:
            self.db.execute("DELETE FROM auth_failures WHERE key = ?", [key])

    def _failures(self, key: str) -> dict | None:
        rows = list(self.db["auth_failures"].rows_where("key = ?", [key]))
        return rows[0] if rows else None

    # ---- codes --------------------------------------------------------------------------------

    def throttle_request(self, zerodha_id: str, email: str) -> None:
        """Raise Throttled when this (ID, email) pair was asked for within ``RESEND_SECONDS``, valid or
        not; only a hash of the pair is kept."""
        now = self.clock()
        pair = hash_secret(f"{zerodha_id}|{email}")
        with self.db.conn:
            self.db.execute("DELETE FROM otp_requests WHERE asked_at <= ?", [now - RESEND_SECONDS])
            rows = self.db.execute("SELECT asked_at FROM otp_requests WHERE pair = ?", [pair]).fetchall()
            if rows:
                wait = int(RESEND_SECONDS - (now - rows[0][0])) + 1
                raise Throttled(f"a code was just asked for: wait {wait} s before asking again", wait)
            self.db.execute("INSERT INTO otp_requests (pair, asked_at) VALUES (?, ?)", [pair, now])

    def forget_request(self, zerodha_id: str, email: str) -> None:
        with self.db.conn:
            self.db.execute("DELETE FROM otp_requests WHERE pair = ?", [hash_secret(f"{zerodha_id}|{email}")])

    def issue(self, zerodha_id: str) -> str:
        """A fresh code for the user, replacing any earlier one (callers throttle with throttle_request)."""
        now = self.clock()
        code = f"{secrets.randbelow(10**6):06d}"
        salt = secrets.token_hex(16)
        self.db["otps"].upsert({"zerodha_id": zerodha_id, "code_hash": hash_secret(code, salt), "salt": salt,
                                "sent_at": now, "expires_at": now + self.ttl, "attempts": 0}, pk="zerodha_id")
        return code

    def verify(self, zerodha_id: str, code: str) -> bool:
        """True once for the right, unexpired code; the code is consumed on success."""
        rows = list(self.db["otps"].rows_where("zerodha_id = ?", [zerodha_id]))
        if not rows:
            return False
        row = rows[0]
        if self.clock() >= row["expires_at"] or row["attempts"] >= MAX_CODE_ATTEMPTS:
            self.db["otps"].delete(zerodha_id)
            return False
        if same(hash_secret(code, row["salt"]), row["code_hash"]):
            self.db["otps"].delete(zerodha_id)
            return True
        self.db["otps"].update(zerodha_id, {"attempts": row["attempts"] + 1})
        return False
