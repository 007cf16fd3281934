"""Slow broker work, off the command path: history for each symbol's bar series, and the day's
circuit bands of the instruments strategies trade. History is read from the local candle store
(``shared/candles``): Kite is asked only for the candles the store does not have yet, so a restarted worker,
or a second user on the same symbol, fetches at most the bars since the last fetch.

A command (add, start) answers at once and asks the seeder; the seeder fetches per user in the
background (Kite allows 3 historical calls a second, so 500 symbols take minutes), reports progress
in ``UserState.seeding``, and hands each symbol to the engine the moment its history is in — that
symbol's instances are warmed and start trading while the others are still being fetched. After a
feed gap the missing bars of each symbol are fetched the same way (``refill``)."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from shared import messages as m
from shared.candles.fetch import refresh
from shared.candles.store import CandleStore
from shared.ist import IST
from shared.kite.clients import NotConnected
from shared.broker_sessions import SessionStoreUnavailable
from shared.kite.errors import KiteError
from strategy_worker.engine import StrategyEngine

log = logging.getLogger("kta.strategy")
QUOTE_BATCH = 500  # Kite's limit of instruments per /quote call


class Seeder:
    def __init__(self, engine: StrategyEngine) -> None:
        self.engine = engine
        self.store = CandleStore(engine.settings.data_path / "candles")
        self._pending: dict[str, dict[int, int]] = {}  # user -> token -> gap start (epoch s; 0 = full seed)
        self._tasks: dict[str, asyncio.Task] = {}
        self._busy: set[int] = set()  # tokens being fetched (by any user's task)

    def request(self, user_id: str, tokens: list[int] | None = None) -> None:
        """Seed the user's symbols that have no history yet (all of them by default), and fetch
        the circuit bands its strategies' instruments lack."""
        e = self.engine
        if tokens is None:
            tokens = sorted({t for r in e.of_user(user_id) for t in r.runner.tokens})
        self._queue(user_id, {t: 0 for t in tokens if t not in e.ready})

    def refill(self, user_id: str, tokens: list[int], gap_start: int) -> None:
        """Fetch the bars a feed gap (from ``gap_start``, epoch s) left out of these symbols."""
        for t in tokens:
            self.engine.unready(t)
        self._queue(user_id, {t: gap_start or 1 for t in tokens})

    def _queue(self, user_id: str, tokens: dict[int, int]) -> None:
        user = self.engine.users[user_id]
        if user.seeding is None:  # reported at once: the command answers with it
            user.seeding = {"done": 0, "total": 0}
        queued = self._pending.setdefault(user_id, {})
        user.seeding["total"] += len(tokens.keys() - queued.keys())
        queued.update(tokens)
        if user_id not in self._tasks:
            self._tasks[user_id] = self.engine.bus.spawn(self._run(user_id), name=f"seed:{user_id}")

    async def idle(self) -> None:
        """Until no seeding is under way (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def _run(self, user_id: str) -> None:
        e = self.engine
        try:
            while user_id in self._pending:  # what arrives meanwhile is fetched next
                await self._seed(user_id, self._pending.pop(user_id))
        except Exception as err:  # noqa: BLE001 - a symbol left unseeded trades cold rather than never
            log.error("seeding for %s failed: %r", user_id, err, extra={"user_id": user_id})
            for t in self._pending.pop(user_id, {}):
                e.series_ready(t)
        finally:
            e.users[user_id].seeding = None
            self._tasks.pop(user_id, None)

    async def _seed(self, user_id: str, batch: dict[int, int]) -> None:
        e, s = self.engine, self.engine.settings
        progress = e.users[user_id].seeding
        try:
            kite = await e.clients.client(user_id)
        except (NotConnected, SessionStoreUnavailable) as err:  # trades cold rather than never
            if isinstance(err, SessionStoreUnavailable):
                log.warning("seeding for %s skipped: %s", user_id, err, extra={"user_id": user_id})
            for t in batch:
                e.series_ready(t)
            return
        await self._bands(user_id, kite)
        end = datetime.now(IST).replace(hour=23, minute=59, second=59, microsecond=0)
        for token, gap in batch.items():
            if token in self._busy or (not gap and token in e.ready):
                progress["done"] += 1
                continue  # another user's task has it; it readies the symbol for everyone
            self._busy.add(token)
            try:
                if s.seed_days or gap:
                    start = datetime.fromtimestamp(gap, IST) if gap else end - timedelta(days=s.seed_days + 3)
                    await self._history(kite, token, start, end)
            finally:
                self._busy.discard(token)
                e.series_ready(token)
                progress["done"] += 1

    async def _history(self, kite, token: int, start: datetime, end: datetime) -> None:
        e = self.engine
        first, last = int(start.timestamp()), int(end.timestamp())
        try:
            await refresh(kite, self.store, [token], e.interval, first, last)
        except (KiteError, OSError) as err:
            log.warning("history of %s unavailable: %r", token, err)
            return
        c = await asyncio.to_thread(self.store.read, token, e.interval, first, last)  # Parquet: off the event loop
        n = e.settings.max_bars + 1
        bars = [m.Bar(token, e.interval, *row) for row in zip(c.ts[-n:].tolist(), c.open[-n:].tolist(),
                                                              c.high[-n:].tolist(), c.low[-n:].tolist(),
                                                              c.close[-n:].tolist(), c.volume[-n:].tolist(),
                                                              c.oi[-n:].tolist())]
        # the last candle Kite gives may still be forming: it is no bar yet (its ticks will make it)
        if e.exchange_now:
            seconds = m.INTERVAL_SECONDS[e.interval]
            bars = [b for b in bars if b.start + seconds <= e.exchange_now]
        else:
            bars = bars[:-1]
        e.series_for(token).seed(bars[-e.settings.max_bars:])

    async def _bands(self, user_id: str, kite) -> None:
        """The circuit limits of the instruments the user's strategies trade, once a day."""
        e = self.engine
        keys = {}
        for r in e.of_user(user_id):
            for inst in r.runner.instances.values():
                target = inst.tradable() if inst.kind == "equity" else None
                if target and target[0].instrument_token not in e.ctx.bands:
                    keys[f"{target[0].exchange}:{target[0].tradingsymbol}"] = target[0].instrument_token
        names = sorted(keys)
        for i in range(0, len(names), QUOTE_BATCH):
            try:
                quotes = await kite.quote(*names[i:i + QUOTE_BATCH])
            except (KiteError, OSError) as err:
                log.warning("circuit limits unavailable: %r", err, extra={"user_id": user_id})
                return
            for key, q in quotes.items():
                if key in keys and q.upper_circuit_limit > 0:
                    e.ctx.bands[keys[key]] = (q.lower_circuit_limit, q.upper_circuit_limit)
