"""Last prices and circuit bands for risk, without a broker read per signal: the ticks of every
instrument a signal has named are followed on NATS (core subjects; the strategies' subscriptions
already make the ticker publish them), so only the first signal on an instrument — or one whose
price has gone stale — asks the broker (``ltp``). Circuit bands are fixed for the day: one
``quote`` per instrument and day, asked only for signals that carry a stop or a target."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
import time

from shared import messages as m
from shared import subjects
from shared.bus import Bus
from shared.exchange_clock import ExchangeClock
from shared.kite import errors
from shared.kite.client import KiteClient

log = logging.getLogger("kta.prices")
STALE_SECONDS = 30.0
FRESH_SECONDS = 1.0  # a tick this recent stands for the price now when the broker cannot be asked


class Prices:
    def __init__(self, bus: Bus, clock: ExchangeClock | None = None) -> None:
        self.bus = bus
        # a band is the exchange's day's, not the machine's: a paper market at --sim-speed 60 starts a new day,
        # with new bands, every few minutes of the machine's one
        self.clock = clock or ExchangeClock()
        self.last: dict[str, tuple[int, float]] = {}  # "EXCHANGE:SYMBOL" -> (paise, monotonic seen)
        self.keys: dict[int, str] = {}  # token -> key, for ticks
        self.subs: dict[int, object] = {}
        self.bands: dict[str, tuple[str, int, int]] = {}  # key -> (the exchange's day, lower, upper)
        self.reading: dict[str, asyncio.Future] = {}  # key -> its band's read under way (the askers share it)

    async def follow(self, tokens: dict[str, int]) -> None:
        """Follow the ticks of these instruments ("EXCHANGE:SYMBOL" -> token) from now on."""
        for key, token in tokens.items():
            if token and token not in self.subs:
                self.keys[token] = key
                self.subs[token] = await self.bus.subscribe(subjects.ticks(token), m.Tick, self._on_tick)

    async def _on_tick(self, tick: m.Tick, msg) -> None:
        key = self.keys.get(tick.instrument_token)
        if key and tick.last_price > 0:
            self.last[key] = (m.to_paise(tick.last_price), time.monotonic())

    def known(self, key: str) -> int:
        seen = self.last.get(key)
        return seen[0] if seen and time.monotonic() - seen[1] < STALE_SECONDS else 0

    async def prices(self, client: KiteClient, keys: list[str]) -> dict[str, int]:
        """Paise by key; what ticks have not priced lately is read with one ``ltp`` call. A key the
        broker cannot price is left out (the caller decides what unknown means)."""
        out = {k: p for k in keys if (p := self.known(k))}
        missing = sorted(set(keys) - out.keys())
        if missing:
            quotes = await _read(client.ltp, missing, "last prices")
            now = time.monotonic()
            for key, q in quotes.items():
                if q.last_price > 0:
                    out[key] = m.to_paise(q.last_price)
                    self.last[key] = (out[key], now)
        return out

    async def now(self, client: KiteClient, key: str) -> int:
        """The price now, for a decision a stale price gets wrong (a rejected stop's corrected trigger): the
        broker's last price (one ``ltp``), else the latest tick only if it is under ``FRESH_SECONDS`` old
        (0: unknown). Not the 30-s cache of ``prices``: after a jump the cached price is the one that made
        the stop invalid."""
        quote = (await _read(client.ltp, [key], "last price")).get(key)
        if quote is not None and quote.last_price > 0:
            self.last[key] = (m.to_paise(quote.last_price), time.monotonic())
            return self.last[key][0]
        seen = self.last.get(key)
        return seen[0] if seen and time.monotonic() - seen[1] < FRESH_SECONDS else 0

    def known_bands(self, keys: list[str]) -> dict[str, tuple[int, int]]:
        """The circuit limits already read today (no broker call)."""
        today = self.clock.day()
        return {k: (b[1], b[2]) for k in keys if (b := self.bands.get(k)) is not None and b[0] == today}

    async def circuits(self, client: KiteClient, keys: list[str]) -> dict[str, tuple[int, int]]:
        """(lower, upper) circuit limits in paise by key, read once per instrument and day."""
        today = self.clock.day()
        missing = [k for k in keys if self.bands.get(k, ("",))[0] != today]
        # a bar's first entries on an instrument come together from several strategies and users: one ``quote`` for
        # them all (the tick -> order bench's first bar sent ~20 for its 6 symbols), not one each of Kite's 1/s
        others = {f for k in missing if (f := self.reading.get(k)) is not None}
        mine = [k for k in missing if k not in self.reading]
        if mine:
            read = asyncio.get_running_loop().create_future()
            self.reading.update({k: read for k in mine})
            try:
                await self._read_bands(client, mine, today)
            finally:
                for k in mine:
                    self.reading.pop(k, None)
                read.set_result(None)
        if others:
            await asyncio.wait(others)
        return {k: (self.bands[k][1], self.bands[k][2]) for k in keys if k in self.bands}

    async def _read_bands(self, client: KiteClient, keys: list[str], today: str) -> None:
        quotes = await _read(client.quote, keys, "circuit limits")
        for key, q in quotes.items():
            if q.lower_circuit_limit and q.upper_circuit_limit:
                self.bands[key] = (today, m.to_paise(q.lower_circuit_limit), m.to_paise(q.upper_circuit_limit))
            if q.last_price > 0:
                self.last[key] = (m.to_paise(q.last_price), time.monotonic())

    async def close(self) -> None:
        for sub in self.subs.values():
            await sub.unsubscribe()
        self.subs.clear()


async def _read(call: Callable[..., Awaitable[dict]], keys: list[str], what: str) -> dict:
    """One quote-class read of ``keys``; a broker error is logged and reads as nothing known (the caller decides
    what unknown means)."""
    try:
        return await call(*keys)
    except errors.ClientClosed:  # the desk's client is gone (its desk closed): nothing to decide on
        raise
    except errors.KiteError as e:
        log.warning("%s of %s unread: %s", what, keys, e)
        return {}
