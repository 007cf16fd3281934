"""The user registry (``gateway.db`` in the data dir): who may log in, and each user's own Kite app.

The Kite api_secret is Fernet-encrypted at rest with the deployment key (``shared.secrets``); it is
decrypted only for the session exchange after the Kite login."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from gateway.logins import LoginStore
from shared.secrets import vault_for
from shared.config import Settings
from shared.kite.egress import Egress
from shared.sqlite import Database

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
    egress_proxy_enc: str = ""  # the static-IP egress of the user's orders (proxy URL, encrypted: it may hold a password)
    egress_local_address: str = ""  # or a source address of this machine


def database(settings: Settings) -> Database:
    db = Database(settings.data_path / "gateway.db")
    db.execute("PRAGMA journal_mode=WAL")
    if "users" not in db.table_names():
        db["users"].create({"zerodha_id": str, "email": str, "name": str, "api_key": str, "api_secret_enc": str,
                            "created_at": int}, pk="zerodha_id", not_null={"email", "api_key"})
    columns = db["users"].columns_dict
    for column in ("egress_proxy_enc", "egress_local_address"):  # added for #14: older databases gain them
        if column not in columns:
            db["users"].add_column(column, str, not_null_default="")
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


def set_egress(settings: Settings, zerodha_id: str, proxy: str = "", local_address: str = "") -> Egress:
    """Where the user's orders leave from (both empty: this machine's default route). Raises
    EgressError naming the field for a setting that can never work; the user must exist."""
    egress = Egress(proxy.strip(), local_address.strip())
    uid = normalise_id(zerodha_id)
    if get_user(settings, uid) is None:
        raise UserError("zerodha_id", f"no user {uid}")
    database(settings)["users"].update(uid, {
        "egress_proxy_enc": vault_for(settings).encrypt(egress.proxy) if egress.proxy else "",
        "egress_local_address": egress.local_address})
    return egress


def egress_of(settings: Settings, user: User) -> Egress:
    proxy = vault_for(settings).decrypt(user.egress_proxy_enc) if user.egress_proxy_enc else ""
    return Egress(proxy, user.egress_local_address)


def _user(row: dict) -> User:
    return User(row["zerodha_id"], row["email"], row["name"], row["api_key"], row["api_secret_enc"],
                row.get("egress_proxy_enc") or "", row.get("egress_local_address") or "")
