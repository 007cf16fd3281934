"""The user registry (``gateway.db`` in the data dir): who may log in, and each user's own Kite app.

The Kite api_secret is Fernet-encrypted at rest with the deployment key (``shared.secrets``); it is
decrypted only for the session exchange after the Kite login."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import sqlite_utils

from gateway.logins import LoginStore
from shared.config import Settings
from shared.kite.sessions import vault_for

DEMO = {"zerodha_id": "DEMO01", "email": "demo@kta.local", "api_key": "kta-demo", "api_secret": "kta-demo-secret",
        "name": "Demo Trader"}
_ID_RE = re.compile(r"^[A-Z0-9]{2,10}$")
_EMAIL_RE = re.compile(r"^[^@\s<>\"']+@[^@\s<>\"']+$")


class UserError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class User:
    zerodha_id: str
    email: str
    name: str
    api_key: str
    api_secret_enc: str


def database(settings: Settings) -> sqlite_utils.Database:
    db = sqlite_utils.Database(settings.data_path / "gateway.db")
    db.execute("PRAGMA journal_mode=WAL")
    if "users" not in db.table_names():
        db["users"].create({"zerodha_id": str, "email": str, "name": str, "api_key": str, "api_secret_enc": str,
                            "created_at": int}, pk="zerodha_id", not_null={"email", "api_key"})
    return db


def normalise_id(zerodha_id: str) -> str:
    uid = (zerodha_id or "").strip().upper()
    if not _ID_RE.match(uid):
        raise UserError("zerodha_id", "Zerodha ID must be 2-10 letters or digits (e.g. AB1234)")
    return uid


def normalise_email(email: str) -> str:
    e = (email or "").strip().lower()
    if not _EMAIL_RE.match(e) or len(e) > 254:
        raise UserError("email", "a valid email address is required")
    return e


def add_user(settings: Settings, *, zerodha_id: str, email: str, api_key: str, api_secret: str, name: str = "") -> User:
    uid, mail = normalise_id(zerodha_id), normalise_email(email)
    if not api_key:
        raise UserError("api_key", "the user's Kite api_key is required")
    if not api_secret:
        raise UserError("api_secret", "the user's Kite api_secret is required")
    row = {"zerodha_id": uid, "email": mail, "name": name or uid, "api_key": api_key,
           "api_secret_enc": vault_for(settings).encrypt(api_secret), "created_at": int(time.time())}
    database(settings)["users"].upsert(row, pk="zerodha_id")
    return _user(row)


def remove_user(settings: Settings, zerodha_id: str) -> bool:
    """The user goes, and with them every session they had (a running gateway's streams end within
    seconds) and any login code not yet used."""
    db = database(settings)
    uid = (zerodha_id or "").strip().upper()
    if not list(db["users"].rows_where("zerodha_id = ?", [uid])):
        return False
    with db.conn:
        db["users"].delete(uid)
        LoginStore(db, settings.session_days).revoke_user(uid)
        if "otps" in db.table_names():
            db.execute("DELETE FROM otps WHERE zerodha_id = ?", [uid])
    return True


def list_users(settings: Settings) -> list[dict]:
    """Users without their secrets (for ``kta users list``)."""
    return [{"zerodha_id": r["zerodha_id"], "email": r["email"], "name": r["name"], "api_key": r["api_key"]}
            for r in database(settings)["users"].rows_where(order_by="zerodha_id")]


def get_user(settings: Settings, zerodha_id: str) -> User | None:
    rows = list(database(settings)["users"].rows_where("zerodha_id = ?", [(zerodha_id or "").strip().upper()]))
    return _user(rows[0]) if rows else None


def find_login(settings: Settings, zerodha_id: str, email: str) -> User | None:
    """The user whose id AND email match (both compared normalised), else None."""
    user = get_user(settings, zerodha_id)
    if user is None or user.email != (email or "").strip().lower():
        return None
    return user


def api_secret(settings: Settings, user: User) -> str:
    return vault_for(settings).decrypt(user.api_secret_enc)


def ensure_demo_user(settings: Settings) -> User:
    """The kite_sim demo account (DEMO01 / demo@kta.local), created once."""
    return get_user(settings, DEMO["zerodha_id"]) or add_user(settings, **DEMO)


def _user(row: dict) -> User:
    return User(row["zerodha_id"], row["email"], row["name"], row["api_key"], row["api_secret_enc"])
