"""The trading facade: everything the JSON API and the HTML pages ask of the workers and the broker.

Commands go to the workers over NATS (``worker_commands.py``: a worker's refusal or silence becomes a
``TradingError``; Start and Stop are ``live_control.py``'s); broker reads use the user's own Kite session from
the KV bucket, a broker error a ``TradingError`` too. Nothing here knows about HTTP requests, so pages and API share it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import date
from collections.abc import Callable
from typing import Any

import msgspec

from shared import messages as m
from shared import subjects
from shared.bus import Bus
from shared.config import Settings
from shared.exchange_clock import ExchangeClock
from shared.kite import errors as kite_errors
from shared.kite.models import Instrument
from shared.kite.client import KiteClient
from shared.broker_sessions import LiveSession, SessionStoreUnavailable, get_session, vault_for
from gateway import exchange_day
from gateway.broker_clients import BrokerClients, NotConnected
from gateway.option_chain import ChainError, option_chain_view
from gateway.desk_queries import RISK_READS, DeskQueries
from gateway.live_control import LiveControl
from gateway.option_desk import OptionDesk
from gateway.trading_error import TradingError, sessions_unavailable  # noqa: F401 - TradingError's public home stays gateway.trading
from gateway.worker_commands import WorkerCommands, ready

log = logging.getLogger("kta.gateway")

WORKERS = ("ticker", "strategy", "execution")
SCAN_TIMEOUT = 90.0  # seconds; a first wide scan with a history condition waits on Kite's rate limit
CATALOG_SECONDS = 60.0  # the strategy catalog is the strategy worker's code: a new deployment's shows within this
HEALTH_SECONDS = 1.0  # a status bar may show the workers as all answering up to this long after a round of pings


async def _feed_off() -> dict:
    return {"state": "off"}


def _from_kite(e: kite_errors.KiteError) -> TradingError:
    if isinstance(e, kite_errors.TokenException):
        return TradingError(409, f"Kite session expired: connect Kite again ({e.message})", code="broker_not_connected")
    if isinstance(e, kite_errors.NetworkException):
        return TradingError(503, f"broker unreachable: {e.message}", code="broker_unavailable")
    return TradingError(502 if e.status >= 500 else 400, f"broker: {e.message}", code="broker_error")


@contextlib.contextmanager
def _connected(not_connected: str):
    """What needs the user's Kite session: none is a 409 saying ``not_connected``, a session store that does not
    answer a 503 (unknown, not absent)."""
    try:
        yield
    except NotConnected:
        raise TradingError(409, not_connected, code="broker_not_connected") from None
    except SessionStoreUnavailable as e:
        raise sessions_unavailable(e) from None


class Trading(WorkerCommands, DeskQueries, OptionDesk, LiveControl):
    def __init__(self, bus: Bus, settings: Settings, timeout: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(bus, timeout)
        self.clock = clock
        self.settings = settings
        self.vault = vault_for(settings)
        self.clients = BrokerClients(bus, settings)
        self.instruments = self.clients.instruments  # today's list, refreshed daily (shared.kite.instruments)
        self.exchange = ExchangeClock()  # the exchange's time as the workers hear it (``hear_exchange``)
        self.instruments.clock = self.exchange.now  # the exchange's listing day: its expired contracts gone
        self._exchange_heard = None  # the heartbeats' subscription
        self.live_tokens: dict[str, list[int]] = {}  # user -> tokens the user is live on (for SSE ticks)
        self._live_changes: dict[str, int] = {}  # user -> starts + stops so far (a stale answer is not cached)
        self._health: asyncio.Future | None = None  # the worker pings in flight or last answered (``worker_health``)
        self._all_up_at = float("-inf")  # when the last round of pings found every worker answering
        self._carried: dict[str, dict] = {}  # user -> what each strategy held when the day began (``carried``)
        self._catalog: asyncio.Future | None = None  # the strategy catalog, asked or being asked (``catalog``)
        self._catalog_until = 0.0

    # ---- the broker ---------------------------------------------------------------------------

    async def session(self, user_id: str) -> LiveSession | None:
        try:
            return await get_session(self.bus, self.vault, user_id)
        except SessionStoreUnavailable as e:
            raise sessions_unavailable(e) from None

    async def client(self, user_id: str) -> KiteClient:
        with _connected("Kite is not connected: connect your Kite account first."):
            return await self.clients.client(user_id)

    async def broker(self, user_id: str, call: str, *args: Any) -> Any:
        client = await self.client(user_id)
        try:
            return msgspec.to_builtins(await getattr(client, call)(*args))
        except kite_errors.KiteError as e:
            raise _from_kite(e) from None

    async def hear_exchange(self) -> None:
        """Follow the exchange's day in the workers' heartbeats (``gateway/exchange_day.py``)."""
        self._exchange_heard = await exchange_day.follow(self.bus, self.exchange)

    async def close(self) -> None:
        if self._exchange_heard is not None:
            with contextlib.suppress(Exception):  # a bus already closed has dropped it
                await self._exchange_heard.unsubscribe()
        await self.clients.close()

    # ---- status -----------------------------------------------------------------------------

    async def worker_health(self, max_age: float = 0.0) -> dict[str, bool]:
        """Each worker pinged; the pings in flight are shared by every status asked meanwhile (50 dashboards
        loading at once sent 150 pings). ``max_age`` (a status bar's): a round that found every worker
        answering at most this many seconds ago is answer enough (50 dashboards one after another pinged 16
        rounds). A worker found down is asked again each time, so one coming back shows at once; decisions
        (Start, Stop, a scan's timeout) take no age."""
        kept = self._health_kept(max_age)
        if kept is not None:
            return kept
        flight = self._health
        if flight is None or flight.done():
            flight = self._health = asyncio.ensure_future(self._ping_workers())
        return dict(await asyncio.shield(flight))

    def _health_kept(self, max_age: float) -> dict[str, bool] | None:
        """The last round of pings when it found every worker answering less than ``max_age`` ago, else None."""
        flight = self._health
        if flight is not None and flight.done() and not flight.cancelled() and flight.exception() is None \
                and all(flight.result().values()) and self.clock() - self._all_up_at < max_age:
            return dict(flight.result())
        return None

    async def _ping_workers(self) -> dict[str, bool]:
        async def probe(service: str) -> bool:
            try:
                await self.bus.nc.request(subjects.service_health(service), b"", timeout=1.0)
                return True
            except Exception:  # noqa: BLE001 - no responders / timeout: not healthy
                return False

        results = await asyncio.gather(*(probe(s) for s in WORKERS))
        if all(results):
            self._all_up_at = self.clock()
        return dict(zip(WORKERS, results))

    async def status(self, user_id: str) -> dict[str, Any]:
        """``ts`` is when the status started to be gathered: of two answers the later ``ts`` is the newer."""
        ts = time.time_ns()
        # asked together, not one after another (the status bar was the slowest panel of a dashboard); the
        # ticker's one GetStatus gives the feed and, after a gateway restart, the live tokens — it was asked
        # once for those and again, after everything else had answered, for the feed
        known = self.live_tokens.get(user_id)
        health = self._health_kept(HEALTH_SECONDS)
        broker, health, kill_switch, tokens, feed = await asyncio.gather(
            self.clients.state(user_id), ready(health) if health is not None else self.worker_health(HEALTH_SECONDS),
            self._kill_switch(user_id), self.live_tokens_soon(user_id),
            self.feed(user_id) if known != [] else _feed_off())
        kill_switch = kill_switch if health["execution"] else "UNKNOWN"
        tokens = tokens if health["ticker"] else self.live_tokens.get(user_id, [])
        feed = feed if health["ticker"] and tokens else {"state": "off" if tokens is not None else "unknown"}
        # live None: the ticker answers its pings but did not say in time (never shown as "stopped")
        return {"user_id": user_id, "broker": broker, "live": None if tokens is None else bool(tokens),
                "live_tokens": tokens or [], "kill_switch": kill_switch, "workers": health, "feed": feed, "ts": ts}

    async def warm(self, user_id: str) -> None:
        """Asked at login, ahead of the trader's first dashboard (the browser follows the login's redirect to it
        at once): the execution worker opens the user's desk (journal, broker session, book) and kill switch,
        the gateway keeps the positions carried in and the live tokens (kept per user as before) and the
        strategy catalog (shared, ``CATALOG_SECONDS`` as before). The page's own
        reads then find the desk open, or join these while they are in flight (identical reads are shared):
        nothing a page shows is answered from here, so nothing on it is older than it was. A failure is left
        for the page to show."""
        try:
            await asyncio.gather(self._snapshot(user_id), self._kill_switch(user_id), self.carried(user_id),
                                 self.live_tokens_of(user_id), self.catalog(user_id))
        except Exception as e:  # noqa: BLE001 - the page asks again and shows what fails
            log.info("warming %s's desk: %r", user_id, e)

    async def _kill_switch(self, user_id: str) -> str:
        try:
            risk = await self.command(user_id, RISK_READS, m.GetRiskSummary(), timeout=2.0)
        except TradingError:
            return "UNKNOWN"
        return risk.get("state", {}).get("state", "UNKNOWN")

    async def feed(self, user_id: str) -> dict:
        """The freshness of the user's feed as the ticker worker judges it: ``state`` live / stale /
        closed (outside market hours) / waiting (no broker session), ``last_tick_age`` in seconds."""
        try:
            data = await self.command(user_id, "ticker", m.GetStatus(), timeout=1.0)
        except TradingError:
            return {"state": "unknown"}
        return (data or {}).get("feed") or {"state": "unknown"}

    # ---- broker reads -----------------------------------------------------------------------

    async def profile(self, user_id: str) -> dict:
        return await self.broker(user_id, "profile")

    async def margins(self, user_id: str) -> dict:
        return await self.broker(user_id, "margins")

    async def holdings(self, user_id: str) -> list[dict]:
        return await self.broker(user_id, "holdings")

    async def positions(self, user_id: str) -> dict:
        """The execution worker's snapshot (paise, marked to market)."""
        return await self.command(user_id, "execution", m.GetPositions(), timeout=10.0)

    async def orders(self, user_id: str) -> list[dict]:
        return await self._with_exchange_times(user_id, await self.command(user_id, "execution", m.GetOrders()))

    async def _with_exchange_times(self, user_id: str, rows: list[dict]) -> list[dict]:
        """The journal stamps orders with kta's clock; Kite's order book has the exchange's (IST),
        the clock of ticks and signals. Without a broker session the rows stay as they are."""
        if not any(r.get("order_id") and not r.get("order_timestamp") for r in rows):
            return rows
        try:
            book = await self.broker(user_id, "orders")
        except TradingError:
            return rows
        times = {o["order_id"]: o["order_timestamp"] for o in book if o.get("order_timestamp")}
        return [{**r, "order_timestamp": times[r["order_id"]]} if r.get("order_id") in times else r for r in rows]

    # ---- journal, risk, execution -----------------------------------------------------------

    async def signals(self, user_id: str, limit: int = 100) -> list[dict]:
        return await self.command(user_id, "strategy", m.GetSignals(limit=limit))

    async def journal(self, user_id: str, day: str = "", limit: int = 500) -> dict:
        return await self.command(user_id, "journal", m.GetJournal(day=day, limit=limit))

    async def journal_summary(self, user_id: str, day: str = "", timeout: float | None = None) -> dict:
        return await self.command(user_id, "journal", m.GetJournalSummary(day=day), timeout=timeout)

    async def risk_summary(self, user_id: str) -> dict:
        return await self.command(user_id, RISK_READS, m.GetRiskSummary())

    async def reset_risk(self, user_id: str, reason: str = "manual reset") -> dict:
        return await self.command(user_id, "risk", m.ResetKillSwitch(reason=reason))

    async def execution_summary(self, user_id: str, day: str = "") -> dict:
        return await self.command(user_id, "execution", m.GetExecutionSummary(day=day))

    # ---- strategies -------------------------------------------------------------------------

    async def strategies(self, user_id: str) -> list[dict]:
        return await self.command(user_id, "strategy", m.ListStrategies())

    def catalog_kept(self) -> list[dict] | None:
        """The catalog as answered, while it is fresh (``catalog``'s rule), else None."""
        flight = self._catalog
        if flight is None or not flight.done() or flight.cancelled() or flight.exception() is not None \
                or time.monotonic() >= self._catalog_until:
            return None
        return flight.result()

    async def catalog(self, user_id: str = "CATALOG") -> list[dict]:
        """Every strategy with its params schema (the same for everyone; the user id only routes). Asked at
        most once a ``CATALOG_SECONDS``, not once per dashboard: it only changes with the strategy worker's
        code (10 kB decoded per load was a fifth of a dashboard's gateway CPU). A failed ask is not kept."""
        flight = self._catalog
        stale = flight is None or time.monotonic() >= self._catalog_until or (
            flight.done() and (flight.cancelled() or flight.exception() is not None))
        if stale:
            flight = self._catalog = asyncio.ensure_future(self.command(user_id, "strategy", m.GetCatalog()))
            self._catalog_until = time.monotonic() + CATALOG_SECONDS
        return await asyncio.shield(flight)

    async def add_strategy(self, user_id: str, strategy: str, params: dict[str, Any] | None = None,
                           symbols: list[str | int] | None = None, strategy_id: str = "") -> dict:
        tokens = await self.resolve(user_id, symbols or [])
        cap = self.settings.max_symbols_per_strategy
        if len(tokens) > cap:
            raise TradingError(400, f"{len(tokens)} symbols: at most {cap} per strategy "
                                    "(KTA_MAX_SYMBOLS_PER_STRATEGY)", "symbols", "quota")
        try:
            return await self.command(user_id, "strategy", m.AddStrategy(strategy=strategy, params=params or {},
                                                                         tokens=tokens, strategy_id=strategy_id))
        except TradingError as e:
            e.field = "symbols" if e.field == "tokens" else e.field  # the worker's name for the body's field
            raise

    async def remove_strategy(self, user_id: str, strategy_id: str) -> dict:
        return await self.command(user_id, "strategy", m.RemoveStrategy(strategy_id=strategy_id))

    # ---- instruments and option chains ------------------------------------------------------

    async def _instrument_list(self, user_id: str) -> list[Instrument]:
        with _connected("connect Kite first: the instrument list comes from the broker"):
            try:
                return await self.clients.instrument_list(user_id)
            except kite_errors.KiteError as e:
                raise _from_kite(e) from None

    def symbol_of(self, token: int) -> str | None:
        inst = self.instruments.token(token)
        return inst.tradingsymbol if inst is not None else None

    async def search_instruments(self, q: str, limit: int = 20, user_id: str = "") -> list[dict]:
        await self._instrument_list(user_id)
        return [self.instruments.describe(i) for i in self.instruments.search(q, limit)]

    async def resolve(self, user_id: str, symbols: list[str | int]) -> list[int]:
        """Tradingsymbols ("NSE:INFY", "NIFTY 50") or instrument tokens to tokens; unknown → 400 ``symbols``."""
        if not symbols:
            return []
        if all(isinstance(s, int) or (isinstance(s, str) and s.isdigit()) for s in symbols):
            tokens = [int(s) for s in symbols]
            if self.instruments.rows or await self.session(user_id):
                await self._instrument_list(user_id)
                unknown = [t for t in tokens if t not in self.instruments.by_token]
                if unknown:
                    raise TradingError(400, f"unknown instrument token(s): {unknown}", "symbols")
            return tokens
        await self._instrument_list(user_id)
        out, unknown = [], []
        for s in symbols:
            inst = self.instruments.find(str(s))
            if inst is None:
                unknown.append(str(s))
            else:
                out.append(inst.instrument_token)
        if unknown:
            raise TradingError(400, f"unknown symbol(s): {', '.join(unknown)}", "symbols")
        return out

    async def option_chain(self, user_id: str, underlying: str, expiry: str = "") -> dict:
        rows = await self._instrument_list(user_id)
        want: date | None = None
        if expiry:
            try:
                want = date.fromisoformat(expiry)
            except ValueError:
                raise TradingError(400, "expiry must be yyyy-mm-dd", "expiry") from None
        client = await self.client(user_id)
        try:
            return await option_chain_view(client, rows, underlying, want)
        except ChainError as e:
            raise TradingError(400, str(e), e.field) from None
        except kite_errors.KiteError as e:
            raise _from_kite(e) from None

    # ---- stock scanner ----------------------------------------------------------------------

    async def scan(self, user_id: str, query: m.Scan) -> dict:
        """The strategy worker's screen: ``{"as_of", "scanned", "matched", "rows"}``. A first scan
        with a history condition is paced by Kite's 3 historical calls a second, hence the long wait."""
        try:
            return await self.command(user_id, "strategy", query, timeout=SCAN_TIMEOUT)
        except TradingError as e:
            if e.status != 503 or not (await self.worker_health())["strategy"]:
                raise
            raise TradingError(504, f"the scan took longer than {SCAN_TIMEOUT:g} s: name symbols or add a price "
                                    "or volume condition to narrow it", code="timeout") from None
