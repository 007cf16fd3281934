"""Feed freshness as a first-class state: when did each live user, and each of their instruments,
last tick — and is the feed ``stale`` (no tick on any of the user's instruments for
``feed_stale_seconds`` during market hours)?

Recording a tick is O(1) (two dict writes). A one-second loop judges every live user; a change of
state is logged, raised as an ``Alert`` (``feed_stale`` / ``feed_restored``), published as the user's
``WorkerStatus`` (the dashboard's status bar refreshes on it) and kept in the gauges
``kta_feed_last_tick_age_seconds{user}`` and ``kta_feed_stale{user}``. The gateway's ``/readyz``
and ``/api/status`` read it from the ticker's health and status answers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime

from shared import messages as m
from shared import metrics, subjects
from shared.exchange_clock import ExchangeClock
from shared.ist import IST
from shared.market_calendar import CALENDAR, MarketCalendar

log = logging.getLogger("kta.ticker_worker")
LIVE, STALE, CLOSED, WAITING = "live", "stale", "closed", "waiting"  # waiting: no broker session yet
ALERT_ATTEMPTS = 3  # a feed alert unanswered by JetStream (a busy server) is asked again, 2 s each


class MarketHours:
    """``"HH:MM-HH:MM"`` on the exchange's trading days (Kite's equity session by default; no ticks are
    expected on a weekend or an exchange holiday), or ``"always"`` for a
    broker that ticks around the clock (kite_sim without --market-hours)."""

    def __init__(self, spec: str, calendar: MarketCalendar = CALENDAR) -> None:
        self.always = spec.strip().lower() == "always"
        self.calendar = calendar
        if not self.always:
            start, end = spec.split("-")
            self.start, self.end = (_minutes(start), _minutes(end))

    async def ready(self) -> None:
        """The exchange calendar read in a thread: its first read imports exchange-calendars (seconds on a
        busy machine), which on the event loop froze the ticker — no ticks, no health answers — at the
        first user's Start."""
        if not self.always:
            await asyncio.to_thread(self.calendar.load)

    def open(self, epoch: float) -> bool:
        if self.always:
            return True
        t = datetime.fromtimestamp(epoch, IST)
        return self.calendar.is_trading_day(t.date()) and self.start <= t.hour * 60 + t.minute < self.end


def _minutes(hhmm: str) -> int:
    h, mm = hhmm.strip().split(":")
    return int(h) * 60 + int(mm)


class Freshness:
    def __init__(self, bus, stale_after: float, hours: MarketHours,
                 live_users: Callable[[], dict[str, list[int]]], clock: Callable[[], float] = time.time,
                 exchange: ExchangeClock | None = None) -> None:
        self.bus = bus
        self.exchange = exchange or ExchangeClock()  # the alerts' exchange time (the hub sets it from the ticks)
        self.stale_after = stale_after
        self.hours = hours
        self.live_users = live_users  # user -> tokens, for users whose broker feed is open
        self.clock = clock
        self.user_tick: dict[str, float] = {}
        self.token_tick: dict[int, float] = {}
        self.since: dict[str, float] = {}  # when we started expecting ticks for the user
        self.states: dict[str, str] = {}

    def ticked(self, user_id: str, tokens: list[int], now: float) -> None:
        self.user_tick[user_id] = now
        for token in tokens:
            self.token_tick[token] = now

    def expect(self, user_id: str) -> None:
        """The user's feed (re)opened or gained instruments: measure silence from now."""
        self.since[user_id] = self.clock()

    def age(self, user_id: str, now: float | None = None) -> float:
        now = self.clock() if now is None else now
        return now - max(self.user_tick.get(user_id, 0.0), self.since.get(user_id, now))

    def token_ages(self, tokens: list[int], user_id: str) -> dict[int, float]:
        now, start = self.clock(), self.since.get(user_id, self.clock())
        return {t: round(now - max(self.token_tick.get(t, 0.0), start), 1) for t in tokens}

    def report(self, user_id: str) -> dict:
        tokens = self.live_users().get(user_id)
        if tokens is None:
            return {"state": WAITING}
        return {"state": self.states.get(user_id, LIVE), "last_tick_age": round(self.age(user_id), 1),
                "stale_after": self.stale_after, "token_ages": self.token_ages(tokens, user_id)}

    def stale_users(self) -> int:
        return sum(1 for s in self.states.values() if s == STALE)

    # ---- the judging loop ------------------------------------------------------------------

    async def run(self, every: float = 1.0) -> None:
        await self.hours.ready()
        while True:
            await self.judge()
            await asyncio.sleep(every)

    async def judge(self) -> None:
        now = self.clock()
        live = {u: t for u, t in self.live_users().items() if t}
        for user_id in list(self.states):
            if user_id not in live:  # stopped or logged out: nothing to judge
                self.states.pop(user_id)
                for gauge in (metrics.FEED_AGE, metrics.FEED_STALE):
                    with contextlib.suppress(KeyError):
                        gauge.remove(user_id)
        for user_id in live:
            self.since.setdefault(user_id, now)
            age = self.age(user_id, now)
            state = CLOSED if not self.hours.open(now) else \
                STALE if self.stale_after and age > self.stale_after else LIVE
            metrics.FEED_AGE.labels(user_id).set(age)
            metrics.FEED_STALE.labels(user_id).set(1.0 if state == STALE else 0.0)
            before = self.states.get(user_id, LIVE)
            self.states[user_id] = state
            if state != before and STALE in (state, before):
                await self._announce(user_id, state, age)

    async def _announce(self, user_id: str, state: str, age: float) -> None:
        now_ns = time.time_ns()
        exchange_ts = int(self.exchange.now() * 1e9) if self.exchange.known else 0  # the time a trader reads
        if state == STALE:
            log.warning("feed of %s is stale: no tick for %.0f s", user_id, age)
            alert = m.Alert(user_id=user_id, kind="feed_stale", severity="critical", source="ticker", ts=now_ns,
                            exchange_ts=exchange_ts, title=f"No market data for {age:.0f} s",
                            detail="The broker feed has gone silent during market hours: strategies see no "
                                   "prices and stops are not watched by kta until ticks return.",
                            key=f"feed_stale:{user_id}:{int(self.since.get(user_id, 0))}")
            status = m.WorkerStatus(service="ticker", instance="feed", state="degraded", ts=now_ns, user_id=user_id,
                                    detail=f"feed stale: no tick for {age:.0f} s")
        else:
            log.info("feed of %s is live again", user_id)
            alert = m.Alert(user_id=user_id, kind="feed_restored", severity="info", source="ticker", ts=now_ns,
                            exchange_ts=exchange_ts, title="Market data is flowing again",
                            key=f"feed_restored:{user_id}:{now_ns}")
            status = m.WorkerStatus(service="ticker", instance="feed", state="ready", ts=now_ns, user_id=user_id,
                                    detail="feed live")
        try:
            await self.bus.publish(subjects.status(user_id), status)
        except Exception as e:  # noqa: BLE001 - NATS trouble: the state and gauges still say it
            log.error("cannot publish the feed state of %s: %r", user_id, e)
        # an unanswered store may still have been kept: asked again under the same id, the stream keeps one
        for attempt in range(ALERT_ATTEMPTS):
            try:
                await self.bus.js_publish(subjects.alerts(user_id), alert, msg_id=alert.key, timeout=2.0)
                return
            except Exception as e:  # noqa: BLE001
                if attempt == ALERT_ATTEMPTS - 1:
                    log.error("cannot store the feed alert of %s: %r", user_id, e)
