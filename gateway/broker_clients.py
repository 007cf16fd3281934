"""The gateway's Kite clients: one long-lived client per connected user (shared.kite.clients), and the
state of a user's broker session as the dashboard shows it."""

from __future__ import annotations

import time

import msgspec
import nats.errors

from gateway.trading_error import TradingError, sessions_unavailable
from shared import subjects
from shared.broker_sessions import SessionStoreUnavailable, stored_entry
from shared.kite.clients import KiteClients, NotConnected  # noqa: F401 - NotConnected is the gateway's too
from shared.kite.egress import Egress
from shared.messages import BrokerSession
from shared.secrets import SecretError

_session_decoder = msgspec.msgpack.Decoder(BrokerSession)


class BrokerClients(KiteClients):
    """The process's Kite clients (shared.kite.clients) plus what the dashboard shows of a session."""

    _sessions_kv = None  # the bucket's handle, opened once (opening asks JetStream for the stream's info)

    async def state(self, user_id: str) -> dict:
        """``live`` / ``expired`` / ``absent`` with the expiry (epoch s), read without decrypting."""
        if self._sessions_kv is None:
            try:
                self._sessions_kv = await self.bus.kv(subjects.KV_BROKER_SESSIONS)
            except nats.errors.TimeoutError:  # a busy server: the page says so (503), never a 500
                raise TradingError(503, "the message bus did not answer in time; try again in a moment") from None
        try:
            entry = await stored_entry(self._sessions_kv, user_id)
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
