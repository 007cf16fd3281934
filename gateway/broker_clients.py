"""The gateway's Kite clients: one long-lived client per connected user (shared.kite.clients), and the
state of a user's broker session as the dashboard shows it."""

from __future__ import annotations

import asyncio
import logging
import time

import msgspec
import nats.errors

from gateway.trading_error import sessions_unavailable
from shared import subjects
from shared.broker_sessions import LiveSession, SessionStoreUnavailable, live_in, stored_entry
from shared.kite.clients import KiteClients, NotConnected  # noqa: F401 - NotConnected is the gateway's too
from shared.kite.egress import Egress
from shared.kv_keys import live_keys
from shared.messages import BrokerSession
from shared.secrets import SecretError

log = logging.getLogger("kta.gateway")
_session_decoder = msgspec.msgpack.Decoder(BrokerSession)


class BrokerClients(KiteClients):
    """The process's Kite clients (shared.kite.clients) plus what the dashboard shows of a session."""

    _sessions_kv = None  # the bucket's handle, opened once (opening asks JetStream for the stream's info)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._entry_reads: dict[str, asyncio.Future] = {}  # user -> the session read in flight

    async def _entry(self, user_id: str):
        """The user's stored session entry. Reads asked while one is in flight share it: a dashboard asks
        at once for the status bar's broker state and for the profile, margins and holdings (each needs
        the user's client, which looks the session up while the user has none) — four reads, now one."""
        flight = self._entry_reads.get(user_id)
        if flight is None:
            flight = self._entry_reads[user_id] = asyncio.ensure_future(self._read_entry(user_id))
            flight.add_done_callback(lambda f: (self._entry_reads.pop(user_id, None), f.cancelled() or f.exception()))
        return await asyncio.shield(flight)

    async def _read_entry(self, user_id: str):
        if self._sessions_kv is None:
            try:
                self._sessions_kv = await self.bus.kv(subjects.KV_BROKER_SESSIONS)
            except nats.errors.TimeoutError as e:  # a busy server: unknown, never "not connected"
                raise SessionStoreUnavailable(e) from e
        return await stored_entry(self._sessions_kv, user_id)

    async def preload_instruments(self) -> None:
        """At start, today's instrument list through the first user connected to Kite: after a restart the
        tokens a page shows (the live chips, tick rows) are named from the first page on, not numbers until
        someone searches. With no one connected it loads on first use, as before."""
        try:
            users = await live_keys(await self.bus.kv(subjects.KV_BROKER_SESSIONS))
        except Exception as e:  # noqa: BLE001 - the store away: first use
            log.info("instrument list not preloaded: %r", e)
            return
        for user_id in users:
            try:
                await self.instrument_list(user_id)
                return
            except Exception as e:  # noqa: BLE001 - this user's session is gone or refused: the next one
                log.info("instrument list not loaded through %s: %r", user_id, e)

    async def live_session(self, user_id: str) -> LiveSession | None:
        return live_in(self.vault, await self._entry(user_id))

    async def state(self, user_id: str) -> dict:
        """``live`` / ``expired`` / ``absent`` with the expiry (epoch s)."""
        try:
            entry = await self._entry(user_id)
        except SessionStoreUnavailable as e:  # unknown, not absent: the page must not say "connect Kite"
            raise sessions_unavailable(e) from None
        if entry is None:
            return {"state": "absent", "expires_at": 0, "login_time": ""}
        try:
            session = _session_decoder.decode(entry.value)
            self.vault.decrypt(session.access_token_enc)  # a token this deployment cannot read is no session
        except (msgspec.DecodeError, msgspec.ValidationError, SecretError):
            return {"state": "absent", "expires_at": 0, "login_time": ""}
        expired = bool(session.expires_at) and session.expires_at <= time.time()
        egress = Egress(session.egress_proxy, session.egress_local_address)
        return {"state": "expired" if expired else "live", "expires_at": session.expires_at,
                "login_time": session.login_time, "orders_leave_from": egress.describe()}
