"""The broker's instrument list, one cache per process, the same class in every process.

Kite generates the dump once a day before the market opens and reuses the instrument tokens of
expired contracts for new ones, so a list older than today's is wrong, not just old: the cache is
stale from ``REFRESH_AT`` (08:35 IST, a few minutes after Kite publishes the day's dump at about
08:30 and well before the 09:15 open) until it is loaded again. ``ensure`` loads it on first use and
after that time; ``refresh_daily`` reloads it at that time in a process that stays up for days.
``clock`` is the exchange's (a worker sets its own, the gateway the one its workers' heartbeats carry): a paper
broker at ``--sim-speed`` opens its next trading day, with that day's dump, long before the machine's next
morning — a list kept by the machine's clock went on offering an expired future as an index's nearest one, and
the broker refused it ("Instrument has expired").

Looked up by ``EXCHANGE:TRADINGSYMBOL`` (the cache is a read-only mapping over those keys, so code that
held a plain dict keeps working) and by instrument token; searched by symbol or name, and a contract by the
words a trader types for it ("NIFTY 26 DEC 24000 CE", "banknifty 52000 pe", "nifty fut"). The lists and
maps are replaced whole on a reload, never edited, so a reader never sees half of two days."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from datetime import date, datetime, timedelta
from datetime import time as clock_time

from shared.ist import IST
from shared.kite.models import Instrument

log = logging.getLogger("kta.kite.instruments")
REFRESH_AT = clock_time(8, 35)  # IST
RETRY_AFTER = 60.0  # seconds before a failed refresh is tried again (the old list is kept meanwhile)
POLL = 5.0  # wall seconds between looks at the clock by ``refresh_daily`` (an exchange clock may run fast)
_KIND_RANK = {"INDICES": 0, "EQ": 1, "FUT": 2, "CE": 3, "PE": 3}
EXCHANGE_ORDER = ("NSE", "BSE", "NFO", "BFO", "MCX", "CDS", "BCD")


def kind_of(i: Instrument) -> str:
    if i.segment == "INDICES":
        return "index"
    return {"EQ": "equity", "FUT": "future", "CE": "option", "PE": "option"}.get(i.instrument_type, i.instrument_type)


def last_refresh(now: float) -> float:
    """The most recent REFRESH_AT (IST) at or before ``now`` (epoch seconds)."""
    local = datetime.fromtimestamp(now, IST)
    at = datetime.combine(local.date(), REFRESH_AT, IST)
    return (at if at <= local else at - timedelta(days=1)).timestamp()


def next_refresh(now: float) -> float:
    return last_refresh(now) + 86400


def listing_day(now: float) -> str:
    """The day whose dump is current at ``now``: today from REFRESH_AT, else yesterday (IST)."""
    return datetime.fromtimestamp(last_refresh(now), IST).date().isoformat()


def contract_words(i: Instrument) -> frozenset[str]:
    """The words a trader may type for a future or option: its name, tradingsymbol, type (CE, PE, FUT), strike
    ("24000", "24000.5"), expiry day ("8", "08"), month ("dec", "december") and year ("26", "2026")."""
    words = {i.name.lower(), i.tradingsymbol.lower(), i.instrument_type.lower()}
    if i.instrument_type == "FUT":
        words.add("future")
    if i.strike:
        words.add(f"{i.strike:g}" if i.strike != int(i.strike) else str(int(i.strike)))
    if i.expiry:
        e = i.expiry
        words |= {str(e.day), f"{e.day:02d}", e.strftime("%b").lower(), e.strftime("%B").lower(),
                  f"{e.year % 100:02d}", str(e.year)}
    return frozenset(words)


def _name_prefix(word: str, i: Instrument) -> bool:
    """The first letters of the underlying's name ("bankn" for BANKNIFTY), as a search box is typed into."""
    return len(word) >= 3 and i.name.lower().startswith(word)


def _indexes(rows: list[Instrument]) -> tuple:
    """An instrument list's lookups: by token, by "EXCHANGE:TRADINGSYMBOL", the search rows, each contract's words."""
    return ({i.instrument_token: i for i in rows}, {f"{i.exchange}:{i.tradingsymbol}": i for i in rows},
            [(i.tradingsymbol.lower(), i.name.lower(), i) for i in rows],
            [(contract_words(i), i) for i in rows if i.instrument_type in ("FUT", "CE", "PE")])


class InstrumentCache(Mapping[str, Instrument]):
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.rows: list[Instrument] = []
        self.by_token: dict[int, Instrument] = {}
        self.by_key: dict[str, Instrument] = {}
        self._search: list[tuple[str, str, Instrument]] = []
        self._words: list[tuple[frozenset[str], Instrument]] = []  # each contract's words (``contract_words``)
        self.loaded_at = 0.0  # epoch seconds of the last load (by ``clock``)
        self.listed = ""  # the listing day of the list held (``listing_day``)
        self.loads = 0
        self._failed_at = 0.0
        self._lock = asyncio.Lock()
        self.on_load: list[Callable[[InstrumentCache], None]] = []  # told of every (re)load

    # ---- the mapping: "EXCHANGE:TRADINGSYMBOL" -> Instrument ---------------------------------

    def __getitem__(self, key: str) -> Instrument:
        return self.by_key[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.by_key)

    def __len__(self) -> int:
        return len(self.by_key)

    # ---- loading ------------------------------------------------------------------------------

    def stale(self) -> bool:
        """No list, or not the one of the clock's listing day — later, or earlier: an exchange clock first heard
        behind the machine's (a paper market on a past date) moves the list back to that day's."""
        return not self.rows or self.listed != listing_day(self.clock())

    def load(self, rows: list[Instrument], indexes: tuple | None = None) -> None:
        """``indexes``: ``_indexes(rows)`` built already (``ensure`` builds them in a thread: ~0.1 s of CPU for
        kite_sim's ~2,000 rows, seconds for Kite's ~90,000)."""
        self.by_token, self.by_key, self._search, self._words = indexes or _indexes(rows)
        self.rows = rows
        self.loaded_at = self.clock()
        self.listed = listing_day(self.loaded_at)
        self.loads += 1
        for listener in self.on_load:
            listener(self)

    async def ensure(self, fetch: Callable[[], Awaitable[list[Instrument]]]) -> list[Instrument]:
        """Today's list: loaded with ``fetch`` if stale (one download however many callers wait). A
        failed refresh keeps yesterday's list (logged) and is retried after RETRY_AFTER; with no list
        at all the error goes to the caller."""
        async with self._lock:
            if not self.stale():
                return self.rows
            if self.rows and self.clock() - self._failed_at < RETRY_AFTER:
                return self.rows
            try:
                rows = await fetch()
                self.load(rows, await asyncio.to_thread(_indexes, rows))
                log.info("instrument list loaded: %d instruments", len(self.rows))
            except Exception as e:
                if not self.rows:
                    raise
                self._failed_at = self.clock()
                log.warning("instrument list not refreshed (%r): keeping the one from %s", e,
                            datetime.fromtimestamp(self.loaded_at, IST).strftime("%Y-%m-%d %H:%M"))
            return self.rows

    async def refresh_daily(self, fetch: Callable[[], Awaitable[list[Instrument]]],
                            sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        """Run forever: at each REFRESH_AT of ``clock`` reload the list (if one was ever loaded: a process that
        never needed instruments does not start downloading them)."""
        while True:
            await sleep(min(POLL, max(1.0, next_refresh(self.clock()) - self.clock())))
            if self.rows and self.stale():
                try:
                    await self.ensure(fetch)
                except Exception as e:  # noqa: BLE001 - the next use (or tomorrow) tries again
                    log.warning("daily instrument refresh failed: %r", e)

    # ---- lookups ------------------------------------------------------------------------------

    def token(self, instrument_token: int) -> Instrument | None:
        return self.by_token.get(instrument_token)

    def find(self, symbol: str) -> Instrument | None:
        """``EXCHANGE:TRADINGSYMBOL``, a bare tradingsymbol (NSE first, then BSE, ...) or a token."""
        s = symbol.strip()
        if s.isdigit():
            return self.by_token.get(int(s))
        if ":" in s:
            exchange, _, tradingsymbol = s.partition(":")
            return self.by_key.get(f"{exchange.strip().upper()}:{tradingsymbol.strip().upper()}")
        for exchange in EXCHANGE_ORDER:
            inst = self.by_key.get(f"{exchange}:{s.upper()}")
            if inst is not None:
                return inst
        return None

    def search(self, q: str, limit: int = 20) -> list[Instrument]:
        """Ranked exact > prefix > substring of symbol or name; indices and equities before derivatives. Words
        that match no symbol or name together ("NIFTY 26 DEC 24000 CE") find the contracts carrying every one
        of them (``search_words``)."""
        q = " ".join(q.strip().lower().split())
        if not q:
            return []
        if ":" in q:
            q = q.split(":", 1)[1]
        hits = self._search_text(q, limit)
        if hits or " " not in q:
            return hits
        return self.search_words(q.split(), limit)

    def search_words(self, words: list[str], limit: int = 20) -> list[Instrument]:
        """The contracts (futures, options) whose words include every one given — the underlying's name (or a
        prefix of it), strike, CE / PE / FUT, expiry day, month and year — nearest expiry first, then by strike."""
        want = [w.lower() for w in words]
        hits: list[tuple[int, Instrument]] = []
        for ws, i in self._words:
            guessed = 0  # words matched only as the start of the name: an exact name ranks first
            for w in want:
                if w not in ws:
                    if not _name_prefix(w, i):
                        break
                    guessed += 1
            else:
                hits.append((guessed, i))
        hits.sort(key=lambda h: (h[0], h[1].expiry or date.max, h[1].name, h[1].strike, h[1].instrument_type))
        return [i for _, i in hits[:limit]]

    def _search_text(self, q: str, limit: int) -> list[Instrument]:
        hits: list[tuple[int, int, str, Instrument]] = []
        for symbol, name, inst in self._search:
            if symbol == q or name == q:
                score = 0
            elif symbol.startswith(q) or name.startswith(q):
                score = 1
            elif q in symbol or q in name:
                score = 2
            else:
                continue
            rank = 0 if inst.segment == "INDICES" else _KIND_RANK.get(inst.instrument_type, 4)
            if rank >= 2 and symbol != q:
                score += 1  # a derivative matched by its underlying's name ranks below the underlying itself
            hits.append((score, rank, symbol, inst))
        hits.sort(key=lambda h: (h[0], h[1], len(h[2]), h[2]))
        return [h[3] for h in hits[:limit]]

    @staticmethod
    def describe(i: Instrument) -> dict:
        return {"instrument_token": i.instrument_token, "tradingsymbol": i.tradingsymbol, "name": i.name,
                "exchange": i.exchange, "segment": i.segment, "instrument_type": i.instrument_type,
                "kind": kind_of(i), "expiry": i.expiry.isoformat() if i.expiry else "", "strike": i.strike,
                "lot_size": i.lot_size, "key": f"{i.exchange}:{i.tradingsymbol}"}
