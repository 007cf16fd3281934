"""One Kite client per connected user, built from the user's session in the KV bucket and reused while
the access token stays the same (so the client's rate limiter sees all of the user's calls)."""

from __future__ import annotations

import contextlib
import time

import msgspec

from shared import subjects
from shared.bus import Bus
from shared.config import Settings
from shared.kite.client import KiteClient
from shared.kite.sessions import client_for, get_session
from shared.messages import BrokerSession
from shared.secrets import SecretError, Vault

_session_decoder = msgspec.msgpack.Decoder(BrokerSession)


class NotConnected(Exception):
    """The user has no live broker session."""


class BrokerClients:
    def __init__(self, bus: Bus, settings: Settings, vault: Vault) -> None:
        self.bus = bus
        self.settings = settings
        self.vault = vault
        self._clients: dict[str, tuple[str, KiteClient]] = {}

    async def client(self, user_id: str) -> KiteClient:
        live = await get_session(self.bus, self.vault, user_id)
        cached = self._clients.get(user_id)
        if live is None:
            if cached is not None:
                await self._drop(user_id)
            raise NotConnected(user_id)
        if cached is not None and cached[0] == live.access_token:
            return cached[1]
        if cached is not None:
            await self._drop(user_id)
        client = client_for(self.settings, live)
        self._clients[user_id] = (live.access_token, client)
        return client

    async def state(self, user_id: str) -> dict:
        """``live`` / ``expired`` / ``absent`` with the expiry (epoch s), read without decrypting."""
        kv = await self.bus.kv(subjects.KV_BROKER_SESSIONS)
        try:
            entry = await kv.get(subjects.user(user_id))
        except Exception:  # noqa: BLE001 - no key (or deleted): no session
            entry = None
        if entry is None or not entry.value:
            return {"state": "absent", "expires_at": 0, "login_time": ""}
        try:
            session = _session_decoder.decode(entry.value)
            self.vault.decrypt(session.access_token_enc)  # a token this deployment cannot read is no session
        except (msgspec.DecodeError, msgspec.ValidationError, SecretError):
            return {"state": "absent", "expires_at": 0, "login_time": ""}
        expired = bool(session.expires_at) and session.expires_at <= time.time()
        return {"state": "expired" if expired else "live", "expires_at": session.expires_at,
                "login_time": session.login_time}

    async def _drop(self, user_id: str) -> None:
        _, client = self._clients.pop(user_id)
        with contextlib.suppress(Exception):
            await client.aclose()

    async def close(self) -> None:
        for user_id in list(self._clients):
            await self._drop(user_id)
