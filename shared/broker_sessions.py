"""Broker sessions in the NATS KV bucket ``kta_broker_sessions``: written by the gateway after the
Kite login, watched by every worker. The access token is Fernet-encrypted at rest; an expired or
dead token deletes the key and announces ``token_expired`` so strategies pause and the dashboard
asks for a fresh login — nothing retries against a dead token.

"No session" and "the store did not answer" are different answers: a missing key is None (the trader
must connect Kite), a store that cannot be read (NATS down or slow, the bucket gone) raises
``SessionStoreUnavailable`` — the gateway answers 503, a worker's message is retried — so a NATS
hiccup never tells a connected trader to connect again."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import msgspec
import nats.errors
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

from shared import subjects
from shared.bus import Bus
from shared.config import Settings
from shared.kite.client import KiteClient
from shared.messages import BrokerEvent, BrokerSession, encode
from shared.secrets import Vault, vault_for  # noqa: F401 - vault_for: where callers have long found it

log = logging.getLogger("kta.sessions")
_decoder = msgspec.msgpack.Decoder(BrokerSession)


@dataclass(frozen=True)
class LiveSession:
    session: BrokerSession
    access_token: str

    @property
    def user_id(self) -> str:
        return self.session.user_id

    @property
    def expired(self) -> bool:
        return bool(self.session.expires_at) and self.session.expires_at <= time.time()


class SessionStoreUnavailable(Exception):
    """The broker sessions' store (NATS KV) could not be read: whether the user is connected is unknown."""

    code = "sessions_unavailable"

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"the broker session store (NATS KV {subjects.KV_BROKER_SESSIONS}) is unavailable "
                         f"({type(cause).__name__}{': ' + str(cause) if str(cause) else ''}); try again in a moment")


_UNREADABLE = (nats.errors.Error, TimeoutError)  # nats-py's (its TimeoutError is one), asyncio's timeouts


async def _kv(bus: Bus):
    try:
        return await bus.kv(subjects.KV_BROKER_SESSIONS)
    except _UNREADABLE as e:
        raise SessionStoreUnavailable(e) from e


async def stored_entry(kv, user_id: str):
    """The user's stored session entry; None when there is none (never written, deleted, purged). Raises
    SessionStoreUnavailable when the store does not answer."""
    try:
        entry = await kv.get(subjects.user(user_id))
    except KeyNotFoundError:  # and KeyDeletedError, its kind
        return None
    except _UNREADABLE as e:
        raise SessionStoreUnavailable(e) from e
    return entry if entry and entry.value else None


async def put_session(bus: Bus, vault: Vault, user_id: str, api_key: str, access_token: str, login_time: str = "",
                      expires_at: int = 0, egress_proxy: str = "", egress_local_address: str = "") -> BrokerSession:
    session = BrokerSession(user_id=subjects.user(user_id), api_key=api_key, access_token_enc=vault.encrypt(access_token),
                            login_time=login_time, expires_at=expires_at, egress_proxy=egress_proxy,
                            egress_local_address=egress_local_address)
    await (await _kv(bus)).put(user_id, encode(session))
    await bus.js_publish(subjects.broker_events(user_id),
                         BrokerEvent(user_id=user_id, kind="connected", ts=time.time_ns(), detail="broker login"))
    return session


async def set_egress(bus: Bus, user_id: str, proxy: str, local_address: str) -> bool:
    """Apply a user's new egress to their live session (every process's client follows it at once).
    False when the user has no session: the next Kite login carries the setting."""
    kv = await _kv(bus)
    for _ in range(5):  # compare-and-set: a login writing the session meanwhile is never overwritten
        entry = await stored_entry(kv, user_id)
        if entry is None:
            return False
        session = msgspec.structs.replace(_decoder.decode(entry.value), egress_proxy=proxy,
                                          egress_local_address=local_address)
        try:
            await kv.update(subjects.user(user_id), encode(session), last=entry.revision)
            return True
        except KeyWrongLastSequenceError:
            continue
    raise RuntimeError(f"the broker session of {user_id} kept changing: egress not applied")


def _live(vault: Vault, raw: bytes) -> LiveSession | None:
    try:
        session = _decoder.decode(raw)
        return LiveSession(session, vault.decrypt(session.access_token_enc))
    except Exception as e:  # noqa: BLE001 - a bad entry is treated as no session
        log.error("unreadable broker session: %s", e)
        return None


async def get_session(bus: Bus, vault: Vault, user_id: str) -> LiveSession | None:
    """The user's live session; None without one (or past its expiry); SessionStoreUnavailable when the
    store cannot say."""
    return live_in(vault, await stored_entry(await _kv(bus), user_id))


def live_in(vault: Vault, entry) -> LiveSession | None:
    """The live session a stored entry (``stored_entry``) holds; None for none, an unreadable one or one
    past its expiry."""
    if entry is None:
        return None
    live = _live(vault, entry.value)
    return None if live is None or live.expired else live


async def expire_session(bus: Bus, user_id: str, reason: str, session: BrokerSession | None = None) -> None:
    """Forget a dead session. With ``session`` (the one that died) only that one: when the trader has
    logged in again meanwhile, the fresh session is kept (compare-and-delete on the KV revision)."""
    kv = await _kv(bus)
    try:
        if session is None:
            await kv.delete(subjects.user(user_id))
        else:
            entry = await kv.get(subjects.user(user_id))
            stored = _decoder.decode(entry.value) if entry is not None and entry.value else None
            if stored is None or stored.access_token_enc != session.access_token_enc:
                log.info("session of %s already replaced by a new login: kept", user_id)
                return
            await kv.delete(subjects.user(user_id), last=entry.revision)
    except Exception as e:  # noqa: BLE001 - gone already, or replaced between the read and the delete
        log.debug("delete session: %r", e)
        if session is not None:
            return
    log.warning("broker session of %s expired: %s", user_id, reason)
    await bus.js_publish(subjects.broker_events(user_id),
                         BrokerEvent(user_id=user_id, kind="token_expired", ts=time.time_ns(), detail=reason))


async def watch_sessions(bus: Bus, vault: Vault) -> AsyncIterator[tuple[str, LiveSession | None]]:
    """Every current session, then every change: (user_id, session) or (user_id, None) on delete."""
    kv = await _kv(bus)
    watcher = await kv.watchall()
    async for entry in watcher:
        if entry is None:  # end of the initial values
            continue
        if entry.operation in ("DEL", "PURGE") or not entry.value:
            yield entry.key, None
        else:
            live = _live(vault, entry.value)
            yield entry.key, (None if live is None or live.expired else live)


def client_for(settings: Settings, live: LiveSession, on_token_expired=None, rate_limiter=None) -> KiteClient:
    """A client for the user of ``live`` (their api_key, token and egress). Workers and the gateway keep
    one per user in ``shared.kite.clients.KiteClients``; a one-shot command may build its own."""
    s = live.session
    return KiteClient(s.api_key, live.access_token, root=settings.kite_root, login_url=settings.kite_login_url,
                      proxy=s.egress_proxy or None, local_address=s.egress_local_address or None,
                      on_token_expired=on_token_expired, rate_limiter=rate_limiter)
