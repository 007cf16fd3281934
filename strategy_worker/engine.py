"""Runs every strategy of every user: ticks → bars → strategy instances → signals on JetStream, and
outcomes → the instance they belong to.

The hot path is O(1) per tick: the tick is validated, its token's bar series updated in place, and
only the instances that override ``on_tick`` are called (an index per token, rebuilt only when
strategies, their state or their users change). A completed bar reaches the ``on_bar`` of the
instances watching that symbol — once each instance has been warmed on that symbol's history. A
strategy that raises is disabled and reported; the worker and the other strategies go on.
"""

from __future__ import annotations

import asyncio

import logging
import math
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

import msgspec

from shared import messages as m
from shared import ist, subjects
from shared.bus import Bus
from shared.config import Settings
from shared.kite.clients import KiteClients
from shared.broker_sessions import vault_for
from strategy_worker.bars import BarSeries
from strategy_worker.runner import StrategyRunner
from strategy_worker.store import StrategyStore
from strategy_worker.strategies import registry
from strategy_worker.strategies.base import AnyOut
from strategy_worker.strategies.checks import Refusal
from strategy_worker.strategies.context import StrategyContext

log = logging.getLogger("kta.strategy")
SIGNAL_LOG = 500
Key = tuple[str, str]  # (user_id, strategy_id): ids are the user's own


@dataclass
class Running:
    runner: StrategyRunner
    name: str
    params: dict[str, Any]
    status: str = "active"  # active | paused | disabled
    error: str = ""
    signals: int = 0
    warm: set[int] = field(default_factory=set)  # symbols whose history the instance has run
    follows: bool = False  # added without symbols: trades the user's live symbols, whatever they are at Start
    skipped: dict[int, str] = field(default_factory=dict)  # symbols it cannot trade -> why (an option chain missing)

    @property
    def user_id(self) -> str:
        return self.runner.user_id

    @property
    def strategy_id(self) -> str:
        return self.runner.strategy_id


@dataclass
class UserState:
    live: bool = False
    tokens: list[int] = field(default_factory=list)
    mode: str = "quote"
    pause_reason: str = ""
    seeding: dict[str, int] | None = None  # {"done": k, "total": n} while history is being fetched
    subscribed: set[int] = field(default_factory=set)  # tokens asked of the ticker while live
    signal_log: deque = field(default_factory=lambda: deque(maxlen=SIGNAL_LOG))


class StrategyEngine:
    def __init__(self, bus: Bus, settings: Settings) -> None:
        self.bus = bus
        self.settings = settings
        self.interval = settings.seed_interval
        self.store = StrategyStore(settings.data_path / "strategies.db")
        self.vault = vault_for(settings)
        self.clients = KiteClients(bus, settings)  # one long-lived client per user, one instrument list
        self.running: dict[Key, Running] = {}
        self.users: dict[str, UserState] = defaultdict(UserState)
        self.series: dict[int, BarSeries] = {}
        self.ready: set[int] = set()  # symbols whose history is in their series (or will never be)
        self.last_ticks: dict[int, m.Tick] = {}
        self.exchange_now = 0
        self.ctx = StrategyContext([], self.last_ticks, clock=lambda: self.exchange_now or int(time.time()))
        self.clients.instruments.on_load.append(  # daily
            lambda cache: self.ctx.set_instruments(cache.rows, cache.by_token, cache.by_key))
        self.clients.instruments.clock = self.ctx.clock  # the exchange's day: an expired future is no index's nearest
        self._bar_index: dict[int, list[Running]] | None = None
        self._tick_index: dict[int, list[Running]] = {}
        self._bad_tick_tokens: set[int] = set()
        self._tick_subs: dict[int, Any] = {}
        self._bar_subjects: dict[int, str] = {}
        self.ticks_seen = 0
        self.ticks_refused = 0
        self.signals_published = 0
        self._day = 0

    # ---- strategies ---------------------------------------------------------------------------

    def make(self, user_id: str, sid: str, name: str, params: msgspec.Struct, tokens: list[int],
             follows: bool = False) -> Running:
        runner = StrategyRunner(registry.get(name), sid, user_id, params, tokens, self.ctx)
        runner.on_refusal = lambda sig, refusal: self._log_refusal(user_id, sig, refusal)
        return Running(runner, name, msgspec.to_builtins(params), follows=follows)

    def put(self, r: Running) -> None:
        """Install (or replace) a strategy and warm it on the history its symbols already have."""
        self.running[(r.user_id, r.strategy_id)] = r
        for token in r.runner.tokens:
            if token in self.ready:
                self.warm(r, token)
        self.reindex()

    def retarget(self, r: Running, tokens: list[int]) -> None:
        """A following strategy's symbols become ``tokens`` (an instance still holding or in flight on
        a symbol that left stays until flat); new symbols whose history is in are warmed at once."""
        r.runner.set_tokens(tokens)
        r.warm &= set(r.runner.instances)
        for token in r.runner.tokens:
            if token in self.ready and token not in r.warm:
                self.warm(r, token)
        self.reindex()

    def get(self, user_id: str, sid: str) -> Running | None:
        return self.running.get((user_id, sid))

    def drop(self, user_id: str, sid: str) -> None:
        self.running.pop((user_id, sid), None)
        self.reindex()

    def of_user(self, user_id: str) -> list[Running]:
        return [r for r in self.running.values() if r.user_id == user_id]

    def restore(self, only=None) -> None:
        """Load the stored strategies (of the users ``only`` accepts: a partition's, see shared/partition.py)."""
        for row in self.store.all():
            if only is not None and not only(row["user_id"]):
                continue
            try:
                params = registry.validate_params(row["name"], row["params"])
            except registry.ParamsError as e:
                log.error("stored strategy %s has bad params: %s", row["strategy_id"], e)
                continue
            r = self.make(row["user_id"], row["strategy_id"], row["name"], params, row["tokens"], bool(row["follows"]))
            r.runner.restore(row["snapshot"])
            r.status, r.error = ("disabled" if row["status"] == "disabled" else "active"), row["error"]
            r.signals = sum(inst.sent for inst in r.runner.instances.values())  # (a takeover: not back to 0)
            self.put(r)

    def forget(self, user_id: str) -> None:
        """Save and drop a user's strategies from memory (their partition moved to another worker)."""
        for r in self.of_user(user_id):
            self.persist(r)
            del self.running[(user_id, r.strategy_id)]
        self.users.pop(user_id, None)
        self.reindex()

    def persist(self, r: Running, token: int | None = None) -> None:
        """The strategy, or only its instance on ``token`` (after that instance's signals or outcomes)."""
        if token is not None and token in r.runner.instances and not r.runner.orphans:
            self.store.save_instance(r.user_id, r.strategy_id, token, r.runner.instances[token].snapshot())
        else:
            self.store.save(r.user_id, r.strategy_id, r.name, r.params, r.runner.symbols, r.runner.snapshot(),
                            r.status, r.error, r.follows)

    def series_for(self, token: int) -> BarSeries:
        s = self.series.get(token)
        if s is None:
            s = self.series[token] = BarSeries(token, self.interval, self.settings.max_bars)
        return s

    # ---- warm-up, per symbol ------------------------------------------------------------------

    def warm(self, r: Running, token: int) -> None:
        """Run the bars the symbol's series holds that its instance has not seen (no signals)."""
        series = self.series.get(token)
        for bar in series.bars if series else ():
            r.runner.warm_up(bar)
        r.warm.add(token)

    def series_ready(self, token: int) -> None:
        """A symbol's history is in (or will never come): warm every instance watching it."""
        self.ready.add(token)
        for r in self.running.values():
            if token in r.runner.instances:
                self.warm(r, token)
        self.reindex()

    def unready(self, token: int) -> None:
        """The symbol's series is being refilled (a reconnect gap): its instances wait."""
        self.ready.discard(token)
        for r in self.running.values():
            r.warm.discard(token)
        self.reindex()

    # ---- the hot path -------------------------------------------------------------------------

    async def watch_ticks(self, tokens) -> None:
        for token in tokens:
            if token not in self._tick_subs:
                self._tick_subs[token] = await self.bus.subscribe(subjects.ticks(token), m.Tick, self._on_tick_msg)

    async def _on_tick_msg(self, tick: m.Tick, msg) -> None:
        await self.on_tick(tick)

    def reindex(self) -> None:
        self._bar_index = None

    def build_index(self) -> dict[int, list[Running]]:
        bars: dict[int, list[Running]] = defaultdict(list)
        ticks: dict[int, list[Running]] = defaultdict(list)
        for r in self.running.values():
            if r.status != "active" or not self.users[r.user_id].live:
                continue
            for token in r.runner.tokens:
                if token in r.warm:
                    bars[token].append(r)
                    if r.runner.cls.wants_ticks():
                        ticks[token].append(r)
        self._tick_index = dict(ticks)
        self._bar_index = dict(bars)
        return self._bar_index

    async def on_tick(self, tick: m.Tick) -> None:
        price = tick.last_price
        if not 0 < price < math.inf:  # NaN, inf, 0 and negatives never become bars
            self._refuse_tick(tick)
            return
        self.ticks_seen += 1
        token = tick.instrument_token
        self.last_ticks[token] = tick
        if tick.exchange_timestamp:
            self.exchange_now = tick.exchange_timestamp
        if tick.oi:
            self.ctx.track_oi(tick)
        series = self.series.get(token) or self.series_for(token)
        bar = series.on_tick(tick)
        if self._bar_index is None:
            self.build_index()
        listeners = self._tick_index.get(token)
        if listeners:
            for r in listeners:
                try:
                    out = r.runner.on_tick(tick)
                except Exception as e:  # noqa: BLE001 - one strategy's bug must not stop the others
                    await self.disable(r, e)
                    continue
                if out:
                    await self.publish(r, out, token)
        if bar is not None:
            await self.on_bar(bar)

    async def on_bar(self, bar: m.Bar) -> None:
        day = ist.day_number(bar.start)
        if day != self._day:  # circuit bands are the day's: fetched again for the new one
            self._day = day
            self.ctx.bands.clear()
        subject = self._bar_subjects.get(bar.instrument_token)
        if subject is None:
            subject = self._bar_subjects[bar.instrument_token] = subjects.bars(self.interval, bar.instrument_token)
        await self.bus.nc.publish(subject, m.encode(bar))
        index = self._bar_index if self._bar_index is not None else self.build_index()
        sending = []
        for r in index.get(bar.instrument_token, ()):
            try:
                out = r.runner.on_bar(bar)
            except Exception as e:  # noqa: BLE001
                await self.disable(r, e)
                continue
            if out:
                sending.append(self.publish(r, out, bar.instrument_token))
        # every instance has decided before any signal leaves, and their publishes wait for JetStream's
        # acks together, not one after the other (each instance's signals stay in order)
        if sending:
            await asyncio.gather(*sending)

    def _refuse_tick(self, tick: m.Tick) -> None:
        self.ticks_refused += 1
        if tick.instrument_token not in self._bad_tick_tokens:  # once per token, not per tick
            self._bad_tick_tokens.add(tick.instrument_token)
            log.warning("tick of %s with price %r dropped (not a price)", tick.instrument_token, tick.last_price)

    async def disable(self, r: Running, e: Exception) -> None:
        r.status, r.error = "disabled", f"{type(e).__name__}: {e}"
        log.error("strategy %s disabled: %s", r.strategy_id, r.error, exc_info=e, extra={"user_id": r.user_id})
        self.persist(r)
        self.reindex()
        await self.bus.publish(subjects.status(r.user_id), m.WorkerStatus(
            service="strategy", instance=r.strategy_id, state="degraded", ts=time.time_ns(),
            user_id=r.user_id, detail=f"strategy {r.strategy_id} disabled: {r.error}"))

    async def publish(self, r: Running, out: list[AnyOut], token: int | None = None) -> None:
        """Send what the instance on ``token`` returned, in order, then save its book."""
        live = r.status == "active" and self.users[r.user_id].live
        for sig in out:
            if not live:  # a hook answered an outcome while the user is stopped or paused
                r.runner.refused(sig, Refusal("NOT_LIVE", f"not sent: {r.strategy_id} is not trading"))
                continue
            # counted before the publish returns: a consumer may already be asking for the log
            r.signals += 1
            if (inst := r.runner.instances.get(token)) is not None:
                inst.sent += 1
            self.signals_published += 1
            entry = msgspec.to_builtins(sig)
            self.users[sig.user_id].signal_log.appendleft(entry)
            try:
                await self.bus.js_publish(subjects.signals(sig.user_id), sig, msg_id=sig.id)
            except Exception as e:  # noqa: BLE001 - NATS down: the signal never left, so it is not in flight
                r.signals -= 1
                if inst is not None:
                    inst.sent -= 1
                self.signals_published -= 1
                self.users[sig.user_id].signal_log.remove(entry)
                r.runner.refused(sig, Refusal("NOT_SENT", f"could not publish: {e!r}"))
                continue
            log.info("signal %s %s", sig.id, sig.reason, extra={"user_id": sig.user_id, "strategy": sig.strategy})
        self.persist(r, token)

    def _log_refusal(self, user_id: str, sig: AnyOut, refusal: Refusal) -> None:
        self.users[user_id].signal_log.appendleft(
            {**msgspec.to_builtins(sig), "refused": refusal.code, "refusal": refusal.reason})

    # ---- outcomes -----------------------------------------------------------------------------

    async def on_outcome(self, o: m.StrategyOutcome) -> None:
        r = self.get(o.user_id, o.strategy_id)
        if r is None:
            log.info("outcome %s for unknown strategy %s", o.kind, o.strategy_id, extra={"user_id": o.user_id})
            return
        try:
            out = r.runner.apply(o)
        except Exception as e:  # noqa: BLE001 - a hook's bug; the position is booked already
            await self.disable(r, e)
            return
        if out:
            await self.publish(r, out, r.runner.touched)
        else:
            self.persist(r, r.runner.touched)

    # ---- pauses and gaps ----------------------------------------------------------------------

    def pause_user(self, user_id: str, reason: str) -> None:
        for r in self.of_user(user_id):
            if r.status == "active":
                r.status, r.error = "paused", reason
                self.persist(r)
        self.users[user_id].pause_reason = reason
        self.reindex()

    def resume_user(self, user_id: str) -> int:
        """Paused strategies trade again (a new broker session, a reset kill switch, Start)."""
        resumed = 0
        for r in self.of_user(user_id):
            if r.status == "paused":
                r.status, r.error = "active", ""
                self.persist(r)
                resumed += 1
        self.users[user_id].pause_reason = ""
        self.reindex()
        return resumed

    async def close_gap(self, user_id: str, gap_start_ns: int = 0) -> list[int]:
        """The user's feed reconnected after a gap: no bar of theirs may silently span it.
        Returns the symbols whose series now need their missing bars fetched."""
        tokens = sorted({t for r in self.of_user(user_id) for t in r.runner.tokens})
        for token in tokens:
            bar = self.series_for(token).on_gap(gap_start_ns // 1_000_000_000)
            if bar is not None:
                await self.on_bar(bar)
        return tokens
