"""Apps, users, the login flow's request tokens and the access tokens of kite_sim."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shared.ist import IST

REQUEST_TOKEN_TTL = 300.0


@dataclass
class App:
    api_key: str
    api_secret: str
    redirect_url: str


@dataclass
class User:
    user_id: str
    password: str
    name: str
    email: str
    funds: int = 10_00_000_00  # paise: ₹10 lakh
    holdings: dict[str, tuple[int, float]] = field(default_factory=dict)  # tradingsymbol -> (qty, avg)


@dataclass
class AccessToken:
    api_key: str
    user_id: str
    expires_at: float  # epoch seconds (next 06:00 IST)
    public_token: str
    login_time: str


def next_cutoff(now: float, hour: int = 6) -> float:
    """Kite tokens die at 06:00 IST the next morning (or today, if it is before 06:00)."""
    dt = datetime.fromtimestamp(now, IST)
    cut = dt.replace(hour=hour, minute=0, second=0, microsecond=0)
    if dt >= cut:
        cut += timedelta(days=1)
    return cut.timestamp()


def digest(access_token: str) -> str:
    """Sessions are kept (and snapshotted) under the token's sha256, never the token itself."""
    return hashlib.sha256(access_token.encode()).hexdigest()


def checksum(api_key: str, request_token: str, api_secret: str) -> str:
    return hashlib.sha256(f"{api_key}{request_token}{api_secret}".encode()).hexdigest()


class Accounts:
    def __init__(self, apps: list[App], users: list[User], cutoff_hour: int = 6, clock=time.time) -> None:
        self.apps = {a.api_key: a for a in apps}
        self.users = {u.user_id: u for u in users}
        self.cutoff_hour = cutoff_hour
        self._clock = clock
        self._request_tokens: dict[str, tuple[str, str, float]] = {}  # token -> (api_key, user_id, expiry)
        self._access: dict[str, AccessToken] = {}

    def login(self, api_key: str, user_id: str, password: str) -> str | None:
        """A correct password yields a single-use request token."""
        user = self.users.get(user_id.upper())
        if api_key not in self.apps or user is None or not secrets.compare_digest(user.password, password):
            return None
        token = secrets.token_urlsafe(24)
        self._request_tokens[token] = (api_key, user.user_id, self._clock() + REQUEST_TOKEN_TTL)
        return token

    def exchange(self, api_key: str, request_token: str, given_checksum: str) -> tuple[str, AccessToken] | str:
        """Returns (access_token, info), or an error message (Kite's wording)."""
        app = self.apps.get(api_key)
        if app is None:
            return "Invalid `api_key`."
        if not secrets.compare_digest(checksum(api_key, request_token, app.api_secret), given_checksum or ""):
            return "Invalid `checksum`."
        entry = self._request_tokens.pop(request_token, None)
        if entry is None or entry[0] != api_key or entry[2] < self._clock():
            return "Token is invalid or has expired."
        now = self._clock()
        token = secrets.token_urlsafe(24)
        info = AccessToken(api_key, entry[1], next_cutoff(now, self.cutoff_hour), secrets.token_hex(16),
                           datetime.fromtimestamp(now, IST).strftime("%Y-%m-%d %H:%M:%S"))
        self._access[digest(token)] = info
        return token, info

    def check(self, api_key: str, access_token: str) -> AccessToken | None:
        info = self._access.get(digest(access_token))
        if info is None or info.api_key != api_key:
            return None
        if info.expires_at <= self._clock():
            self._access.pop(digest(access_token), None)
            return None
        return info

    def invalidate(self, api_key: str, access_token: str) -> bool:
        info = self._access.get(digest(access_token))
        if info is None or info.api_key != api_key:
            return False
        del self._access[digest(access_token)]
        return True

    def sessions(self) -> dict[str, AccessToken]:
        return dict(self._access)

    def restore_sessions(self, sessions: dict[str, AccessToken]) -> None:
        now = self._clock()
        self._access.update({d: info for d, info in sessions.items() if info.expires_at > now})

    def expire_all(self) -> int:
        """Admin: kill every session now (what 06:00 IST does)."""
        n = len(self._access)
        self._access.clear()
        return n


def default_accounts(redirect_url: str, token_expiry_hour: int = 6) -> Accounts:
    return Accounts(
        # a second app: a user may move to another Kite app (a new api_key) and log in through it
        apps=[App("kta-demo", "kta-demo-secret", redirect_url), App("kta-demo-2", "kta-demo-2-secret", redirect_url)],
        cutoff_hour=token_expiry_hour,
        users=[
            User("DEMO01", "demo", "Demo Trader", "demo@kta.local",
                 holdings={"INFY": (10, 1480.0), "RELIANCE": (5, 1402.5), "ITC": (100, 398.2)}),
            User("DEMO02", "demo2", "Second Trader", "demo2@kta.local"),
        ],
    )
