"""Runs every strategy of every user: ticks → bars → strategies → signals on JetStream.

Per tick the work is O(1) per series and strategy: the bar builder updates in place, indicators
update incrementally, and only a completed bar reaches ``on_bar``. A strategy that raises is
disabled and reported; the worker and the other strategies go on.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import msgspec

from shared import messages as m
from shared import subjects
from shared.bus import Bus
from shared.config import Settings
from shared.kite.models import Instrument
from shared.kite.sessions import client_for, get_session, vault_for
from strategy_worker.bars import BarSeries
from shared.options.chain import IST
from strategy_worker.store import StrategyStore
from strategy_worker.strategies import registry
from strategy_worker.strategies.base import BaseStrategy, StrategyContext

log = logging.getLogger("kta.strategy")
SIGNAL_LOG = 500


@dataclass
class Running:
    strategy: BaseStrategy
    name: str
    params: dict[str, Any]
    status: str = "active"  # active | paused | disabled
    error: str = ""
    signals: int = 0
    warmed: bool = False  # has run the bars its series held when it was added


@dataclass
class UserState:
    live: bool = False
    tokens: list[int] = field(default_factory=list)
    mode: str = "quote"
    pause_reason: str = ""
    signal_log: deque = field(default_factory=lambda: deque(maxlen=SIGNAL_LOG))


class StrategyEngine:
    def __init__(self, bus: Bus, settings: Settings) -> None:
        self.bus = bus
        self.settings = settings
        self.interval = settings.seed_interval
        self.store = StrategyStore(settings.data_path / "strategies.db")
        self.vault = vault_for(settings)
        self.running: dict[str, Running] = {}
        self.users: dict[str, UserState] = defaultdict(UserState)
        self.series: dict[int, BarSeries] = {}
        self.last_ticks: dict[int, m.Tick] = {}
        self.exchange_now = 0
        self.ctx = StrategyContext([], self.last_ticks, clock=lambda: self.exchange_now or int(time.time()))
        self._tick_subs: dict[int, Any] = {}
        self._by_token: dict[int, list[Running]] | None = None
        self.ticks_seen = 0
        self.signals_published = 0

    # ---- instruments and state ----------------------------------------------------------------

    async def ensure_instruments(self, user_id: str) -> None:
        if self.ctx.instruments:
            return
        live = await get_session(self.bus, self.vault, user_id)
        if live is None:
            return
        async with client_for(self.settings, live) as kite:
            self._set_instruments(await kite.instruments())

    def _set_instruments(self, instruments: list[Instrument]) -> None:
        self.ctx.instruments = instruments
        self.ctx.by_token = {i.instrument_token: i for i in instruments}
        self.ctx.by_symbol = {f"{i.exchange}:{i.tradingsymbol}": i for i in instruments}

    def restore(self, only: Callable[[str], bool] | None = None) -> None:
        """Load the stored strategies (of the users ``only`` accepts: a partition's, see shared/partition.py)."""
        for row in self.store.all():
            if only is not None and not only(row["user_id"]):
                continue
            try:
                params = registry.validate_params(row["name"], row["params"])
            except registry.ParamsError as e:
                log.error("stored strategy %s has bad params: %s", row["strategy_id"], e)
                continue
            strategy = registry.get(row["name"])(row["strategy_id"], row["user_id"], params, row["tokens"], self.ctx)
            strategy.restore(row["snapshot"])
            self.running[row["strategy_id"]] = Running(strategy, row["name"], row["params"],
                                                       "disabled" if row["status"] == "disabled" else "active",
                                                       row["error"])
        self._by_token = None

    def forget(self, user_id: str) -> None:
        """Save and drop a user's strategies from memory (their partition moved to another worker)."""
        for r in self.of_user(user_id):
            self.persist(r.strategy.strategy_id)
            del self.running[r.strategy.strategy_id]
        self.users.pop(user_id, None)
        self._by_token = None

    def persist(self, sid: str) -> None:
        r = self.running[sid]
        s = r.strategy
        self.store.save(sid, s.user_id, r.name, r.params, s.tokens, s.snapshot(), r.status, r.error)

    def of_user(self, user_id: str) -> list[Running]:
        return [r for r in self.running.values() if r.strategy.user_id == user_id]

    # ---- commands -----------------------------------------------------------------------------

    def add(self, user_id: str, cmd: m.AddStrategy) -> m.Ok | m.Error:
        try:
            params = registry.validate_params(cmd.strategy, cmd.params)
        except registry.ParamsError as e:
            return m.Error(code="bad_params", message=str(e), field=e.field)
        sid = cmd.strategy_id or f"{cmd.strategy}-{time.time_ns() // 1000 % 10**10:x}"
        if sid in self.running:
            return m.Error(code="exists", message=f"strategy {sid} already exists", field="strategy_id")
        tokens = list(cmd.tokens) or list(self.users[user_id].tokens)
        strategy = registry.get(cmd.strategy)(sid, user_id, params, tokens, self.ctx)
        self.running[sid] = Running(strategy, cmd.strategy, msgspec.to_builtins(params))
        if all(self.series.get(t) and self.series[t].bars for t in tokens):
            self.warm(self.running[sid])  # before its first live bar (seed() warms the others)
        self._by_token = None
        self.persist(sid)
        return m.Ok(data={"strategy_id": sid})

    def remove(self, user_id: str, strategy_id: str) -> m.Ok | m.Error:
        r = self.running.get(strategy_id)
        if r is None or r.strategy.user_id != user_id:
            return m.Error(code="not_found", message=f"no strategy {strategy_id}", field="strategy_id")
        del self.running[strategy_id]
        self._by_token = None
        self.store.remove(strategy_id)
        return m.Ok(data={"removed": strategy_id})

    def update_params(self, user_id: str, cmd: m.UpdateParams) -> m.Ok | m.Error:
        r = self.running.get(cmd.strategy_id)
        if r is None or r.strategy.user_id != user_id:
            return m.Error(code="not_found", message=f"no strategy {cmd.strategy_id}", field="strategy_id")
        merged = {**r.params, **cmd.params}
        try:
            params = registry.validate_params(r.name, merged)
        except registry.ParamsError as e:
            return m.Error(code="bad_params", message=str(e), field=e.field)
        snap = r.strategy.snapshot()
        fresh = registry.get(r.name)(cmd.strategy_id, user_id, params, r.strategy.tokens, self.ctx)
        fresh.restore(snap)
        self.running[cmd.strategy_id] = Running(fresh, r.name, msgspec.to_builtins(params), r.status)
        self.warm(self.running[cmd.strategy_id])  # new indicators: warm them on the bars so far
        self._by_token = None
        self.persist(cmd.strategy_id)
        return m.Ok(data={"strategy_id": cmd.strategy_id, "params": msgspec.to_builtins(params)})

    def listing(self, user_id: str) -> list[dict]:
        return [{"strategy_id": r.strategy.strategy_id, "strategy": r.name, "params": r.params,
                 "tokens": r.strategy.tokens, "state": r.status, "error": r.error, "signals": r.signals,
                 "position": {str(k): v for k, v in r.strategy.position.items()}} for r in self.of_user(user_id)]

    # ---- live ---------------------------------------------------------------------------------

    async def start_live(self, user_id: str, tokens: list[int], mode: str) -> m.Ok | m.Error:
        await self.ensure_instruments(user_id)
        if not self.ctx.instruments:
            return m.Error(code="broker_not_connected", message="Connect your Kite account first.")
        user = self.users[user_id]
        user.tokens, user.mode, user.live, user.pause_reason = list(tokens), mode, True, ""
        self.store.set_live(user_id, user.tokens, mode)
        for r in self.of_user(user_id):
            if not r.strategy.tokens:
                r.strategy.tokens = list(tokens)
                self._by_token = None
                self.persist(r.strategy.strategy_id)
            if r.status == "paused":
                r.status = "active"
        seeded = await self.seed(user_id)
        needed = await self.subscribe_needed(user_id)
        return m.Ok(data={"strategies": len(self.of_user(user_id)), "seeded_bars": seeded, "tokens": sorted(needed)})

    async def subscribe_needed(self, user_id: str) -> set[int]:
        user = self.users[user_id]
        needed = set(user.tokens)
        for r in self.of_user(user_id):
            needed |= r.strategy.required_tokens()
        for token in needed:
            if token not in self._tick_subs:
                self._tick_subs[token] = await self.bus.subscribe(subjects.ticks(token), m.Tick, self._on_tick_msg)
        # in the background: a slow or absent ticker worker must not hold up live start
        self.bus.spawn(self._ask_ticker(user_id, sorted(needed)), name=f"ticker-subscribe:{user_id}")
        return needed

    async def _ask_ticker(self, user_id: str, tokens: list[int]) -> None:
        # full mode: only full packets carry the exchange timestamp that bars are built on
        try:
            await self.bus.request(subjects.cmd(user_id, "ticker", "subscribe"),
                                   m.Subscribe(tokens=tokens, mode=m.TickMode.FULL), timeout=5)
        except Exception as e:  # noqa: BLE001 - bars then fall back to receive time
            log.warning("could not subscribe strategy tokens for %s: %r", user_id, e)

    async def seed(self, user_id: str) -> int:
        """Fill each empty series of the user's tokens from historical candles, then warm every
        strategy of the user not yet warmed on its series (no signals while warming). Returns the
        number of bars the user's strategies were warmed on."""
        tokens = {t for r in self.of_user(user_id) for t in r.strategy.tokens}
        live = await get_session(self.bus, self.vault, user_id) if self.settings.seed_days else None
        empty = [t for t in tokens if not self.series_for(t).bars]
        if live is not None and empty:
            # through the end of the exchange's day: a naive now() would be the host's zone, not IST
            end = datetime.now(IST).replace(hour=23, minute=59, second=59, microsecond=0)
            start = end - timedelta(days=self.settings.seed_days + 3)  # weekends
            async with client_for(self.settings, live) as kite:
                for token in empty:
                    try:
                        candles = await kite.historical_data(token, start, end, self.interval)
                    except Exception as e:  # noqa: BLE001
                        log.warning("seed %s failed: %r", token, e)
                        continue
                    self.series_for(token).seed([
                        m.Bar(token, self.interval, int(c.date.timestamp()), c.open, c.high, c.low, c.close,
                              c.volume, c.oi or 0) for c in candles[-self.settings.max_bars:]])
        for r in self.of_user(user_id):
            self.warm(r)
        return sum(len(self.series_for(t).bars) for t in tokens)

    def warm(self, r: Running) -> None:
        """Run the bars its series already hold through a strategy that has not seen them (once):
        a strategy added, or re-created with new params, mid-session starts warm too."""
        if r.warmed:
            return
        r.warmed = True
        for token in r.strategy.tokens:
            series = self.series.get(token)
            for bar in series.bars if series else ():
                r.strategy.warm_up(bar)

    def stop_live(self, user_id: str, reason: str = "stopped") -> m.Ok:
        user = self.users[user_id]
        user.live = False
        user.pause_reason = reason
        self.store.set_live(user_id, None)
        for r in self.of_user(user_id):
            self.persist(r.strategy.strategy_id)
        return m.Ok(data={"paused": len(self.of_user(user_id))})

    def series_for(self, token: int) -> BarSeries:
        s = self.series.get(token)
        if s is None:
            s = self.series[token] = BarSeries(token, self.interval, self.settings.max_bars)
        return s

    # ---- the hot path -------------------------------------------------------------------------

    async def _on_tick_msg(self, tick: m.Tick, msg) -> None:
        await self.on_tick(tick)

    async def on_tick(self, tick: m.Tick) -> None:
        self.ticks_seen += 1
        self.last_ticks[tick.instrument_token] = tick
        if tick.exchange_timestamp:
            self.exchange_now = tick.exchange_timestamp
        if tick.oi:
            self.ctx.track_oi(tick)
        bar = self.series_for(tick.instrument_token).on_tick(tick)
        for r in self._active_for(tick.instrument_token):
            r.strategy.last_tick = tick
            await self._run(r, r.strategy.on_tick, tick)
        if bar is not None:
            await self.on_bar(bar)

    async def on_bar(self, bar: m.Bar) -> None:
        await self.bus.publish(subjects.bars(self.interval, bar.instrument_token), bar)
        for r in self._active_for(bar.instrument_token):
            await self._run(r, r.strategy.on_bar, bar)

    def _active_for(self, token: int) -> list[Running]:
        if self._by_token is None:  # rebuilt only when strategies or their tokens change
            index: dict[int, list[Running]] = defaultdict(list)
            for r in self.running.values():
                for t in r.strategy.tokens:
                    index[t].append(r)
            self._by_token = index
        return [r for r in self._by_token.get(token, ())
                if r.status == "active" and self.users[r.strategy.user_id].live]

    async def _run(self, r: Running, fn, arg) -> None:
        try:
            out = fn(arg)
        except Exception as e:  # noqa: BLE001 - one strategy's bug must not stop the others
            r.status, r.error = "disabled", f"{type(e).__name__}: {e}"
            log.exception("strategy %s disabled", r.strategy.strategy_id)
            self.persist(r.strategy.strategy_id)
            await self.bus.publish(subjects.status(r.strategy.user_id), m.WorkerStatus(
                service="strategy", instance=r.strategy.strategy_id, state="degraded", ts=time.time_ns(),
                user_id=r.strategy.user_id, detail=f"strategy {r.strategy.strategy_id} disabled: {r.error}"))
            return
        for sig in out:
            await self.publish_signal(r, sig)
        if out:
            self.persist(r.strategy.strategy_id)

    async def publish_signal(self, r: Running, sig: m.Signal | m.SignalGroup) -> None:
        # counted before the publish returns: a consumer may already be asking for the log
        r.signals += 1
        self.signals_published += 1
        self.users[sig.user_id].signal_log.appendleft(msgspec.to_builtins(sig))
        await self.bus.js_publish(subjects.signals(sig.user_id), sig, msg_id=sig.id)
        log.info("signal %s %s", sig.id, sig.reason, extra={"user_id": sig.user_id, "strategy": sig.strategy})

    # ---- pauses -------------------------------------------------------------------------------

    def pause_user(self, user_id: str, reason: str) -> None:
        for r in self.of_user(user_id):
            if r.status == "active":
                r.status = "paused"
                r.error = reason
                self.persist(r.strategy.strategy_id)
        self.users[user_id].pause_reason = reason

    async def on_gap(self, user_id: str, gap_start_ns: int = 0) -> None:
        """The user's feed reconnected after a gap: no bar of theirs may silently span it."""
        for token in {t for r in self.of_user(user_id) for t in r.strategy.tokens}:
            bar = self.series_for(token).on_gap(gap_start_ns // 1_000_000_000)
            if bar is not None:
                await self.on_bar(bar)
