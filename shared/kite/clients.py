"""One long-lived Kite client per user in a process, from one place.

A user's client is built from the user's broker session in KV the first time it is needed and then
kept: a new access token (the next morning's login) or a new egress is applied to the same client
object as soon as the session changes in KV, so whoever holds it (a desk, a scan) never talks with
yesterday's token, and its connection pool stays warm. Every client of one api_key draws on one rate
budget shared by all processes (``budget.SharedBudget``). The instrument list, the same for every
user, is downloaded through whichever user's client is at hand into this process's one
``InstrumentCache``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from shared.bus import Bus
from shared.config import Settings
from shared.kite import errors
from shared.kite.budget import SharedBudget
from shared.kite.client import KiteClient
from shared.kite.instruments import InstrumentCache
from shared.kite.models import Instrument
from shared.broker_sessions import (
    LiveSession,
    client_for,
    get_session,
    vault_for,
    watch_sessions,
)

log = logging.getLogger("kta.kite.clients")
TASK_STOP_SECONDS = 2.0  # how long close() waits for its cancelled tasks before going on without them


class NotConnected(Exception):
    """The user has no live broker session."""


class KiteClients:
    def __init__(self, bus: Bus, settings: Settings, *,
                 on_token_expired: Callable[[str, errors.TokenException], Any] | None = None,
                 on_replaced: Callable[[str, KiteClient], Any] | None = None) -> None:
        self.bus = bus
        self.settings = settings
        self.vault = vault_for(settings)
        self.on_token_expired = on_token_expired
        self.on_replaced = on_replaced  # (user, new client): the user's session moved to another api_key
        self.instruments = InstrumentCache()
        self._clients: dict[str, KiteClient] = {}
        self._expires: dict[str, int] = {}  # user -> the session's expiry (epoch s, 0 = none known)
        self._budgets: dict[str, SharedBudget] = {}
        self._tasks: list[asyncio.Task] = []

    def start(self) -> "KiteClients":
        """Follow the sessions in KV (new tokens, new egress, logouts) and refresh the instruments daily
        (done on first use; idempotent)."""
        if not self._tasks:
            self._tasks = [self.bus.spawn(self._follow_sessions(), name="kite-clients:sessions"),
                           self.bus.spawn(self.instruments.refresh_daily(self.fetch_instruments),
                                          name="kite-clients:instruments")]
        return self

    async def client(self, user_id: str) -> KiteClient:
        """The user's client; raises NotConnected without a live session."""
        self.start()
        cached = self._clients.get(user_id)
        if cached is not None and not 0 < self._expires.get(user_id, 0) <= time.time():
            return cached
        live = await self.live_session(user_id)
        if live is None:  # none, or past its 06:00 IST expiry
            await self.drop(user_id)
            raise NotConnected(user_id)
        return self._apply(user_id, live)

    async def live_session(self, user_id: str) -> LiveSession | None:
        """The user's session as the store has it now (a subclass may share reads made at the same time)."""
        return await get_session(self.bus, self.vault, user_id)

    async def instrument_list(self, user_id: str = "") -> list[Instrument]:
        """Today's instrument list (downloaded once a day, see InstrumentCache)."""
        self.start()
        return await self.instruments.ensure(lambda: self.fetch_instruments(user_id))

    async def fetch_instruments(self, user_id: str = "") -> list[Instrument]:
        client = None
        if user_id:
            with contextlib.suppress(NotConnected):
                client = await self.client(user_id)
        client = client or next(iter(self._clients.values()), None)
        if client is None:
            raise NotConnected("no user is connected to Kite: the instrument list comes from the broker")
        return await client.instruments()

    def cached(self, user_id: str) -> KiteClient | None:
        """The user's client as this process holds it now (None before its first use or after its session ended)."""
        return self._clients.get(user_id)

    def leaves_from(self, user_id: str) -> str:
        """Where this process sends the user's orders from ("" before it has the user's client)."""
        client = self._clients.get(user_id)
        return client.egress.describe() if client is not None else ""

    def budget(self, api_key: str) -> SharedBudget:
        if api_key not in self._budgets:
            self._budgets[api_key] = SharedBudget(self.bus, api_key)
        return self._budgets[api_key]

    def _apply(self, user_id: str, live: LiveSession) -> KiteClient:
        s = live.session
        self._expires[user_id] = s.expires_at
        client = self._clients.get(user_id)
        if client is not None and client.api_key == s.api_key:
            client.use_session(live.access_token, proxy=s.egress_proxy, local_address=s.egress_local_address)
            return client
        old = client  # a new api_key (another Kite app): a new client; the old one closed, its waiting calls sent on

        def expired(e: errors.TokenException) -> None:
            if self.on_token_expired is not None:
                self.on_token_expired(user_id, e)

        client = client_for(self.settings, live, on_token_expired=expired, rate_limiter=self.budget(s.api_key))
        self._clients[user_id] = client
        if old is not None:
            old.successor = client  # a call still on the old one when it closes goes through this one
            self.bus.spawn(old.aclose(), name=f"kite-clients:close:{user_id}")
            if self.on_replaced is not None:  # whoever kept the closed one (a desk) takes this one
                self.on_replaced(user_id, client)
        return client

    async def drop(self, user_id: str) -> None:
        client = self._clients.pop(user_id, None)
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()

    async def _follow_sessions(self) -> None:
        async for user_id, live in watch_sessions(self.bus, self.vault):
            if live is None:
                await self.drop(user_id)
            elif user_id in self._clients:
                try:
                    self._apply(user_id, live)
                except ValueError as e:  # an egress that can never work: orders will be refused by name
                    log.error("broker session of %s not applied: %s", user_id, e)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            # Python 3.11's asyncio.wait_for (nats-py's requests use it) can swallow a cancellation that lands as
            # its inner future completes: a task that did not stop must not hold the close up for good (a backtest
            # service's close hung to the test's timeout, awaiting the session watch it had cancelled)
            _, stuck = await asyncio.wait(self._tasks, timeout=TASK_STOP_SECONDS)
            for task in stuck:
                log.warning("%s did not stop when cancelled: cancelled again, not awaited", task.get_name())
                task.cancel()
        for user_id in list(self._clients):
            await self.drop(user_id)
