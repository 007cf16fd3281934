"""One rate budget per Kite api_key across every process of a deployment.

Kite counts a key's requests wherever they come from: the gateway (quotes, the option chain), the
strategy worker (seeding, scans) and the execution worker (reconciliation, positions) each keeping
their own "10 requests/s" would together send 30. So the slots are handed out from NATS KV, which
every kta process already reaches: one key per (api_key, endpoint class) holds the times of the
slots handed out in the last window; a caller computes the next free slot with the same rule as the
in-process limiter (``ratelimit.next_slot``) and claims it with a compare-and-set on the entry's
revision, retrying on a conflict. No process is the owner, so none has to be up for the others to
trade, and a restart loses nothing (why not a token-bucket service on request/reply: it would be one
more thing to keep alive; why not pyrate-limiter's Redis/SQLite backends: one more server, or one
host only, where NATS already spans the deployment; see docs/architecture.md).

The slot times come from each process's clock; the windows are ``MARGIN`` longer than Kite's to
absorb skew between hosts (NTP keeps it to milliseconds) and late wake-ups. A slot is reserved at most
``AHEAD`` seconds ahead (a caller further back in the queue waits and claims nearer the time), so a
process that stops leaves no long queue of reservations for the others to wait out. If NATS cannot be reached the call falls
back to this process's own limiter, and says so in the log, rather than stall trading.

A process's calls come in bursts (an account's orders fill together and each fill's trades are read: ~3 reads
of a key within 0.3 s, one compare-and-set each, issue #18). So a claim made while the process is alone on the
key (its last write is still the entry's, no conflict for ``CONTENDED`` s) and free to go at once also takes up
to ``SPARES`` more of the window's free slots as a lease: each stamped ``LEASE - margin`` ahead, the latest it
may be sent, and used by this process's next calls until then without a round trip. A lease counts in every
window it could be sent in (``next_slot``'s rule holds for a stamp ahead of its use), is at most ``LEASE`` s
long (a process that dies leaves less than ``AHEAD`` behind), and one never used is struck from the entry by
the process's next write."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time

import msgspec
from nats.js.errors import APIError, KeyNotFoundError, KeyWrongLastSequenceError

from shared import subjects
from shared.kite.ratelimit import LIMITS, MARGIN, RateLimiter, horizon, next_slot

log = logging.getLogger("kta.kite.budget")
CONFLICT_RETRIES = 50  # compare-and-set attempts before a caller gives up on the shared budget
KV_TIMEOUT = 4.0
AHEAD = 1.0  # slots are reserved at most this far ahead: a process that dies leaves no long queue behind
SPARES = 2  # slots a claim made alone on its key takes for this process's next calls (a lease)
LEASE = 0.5  # how long a lease's slots may be used (<= AHEAD)
CONTENDED = 10.0  # seconds after a conflict on a key during which its claims take no lease
_stamps = msgspec.msgpack.Decoder(list[float])
_encode = msgspec.msgpack.Encoder().encode


def budget_key(api_key: str, cls: str) -> str:
    """KV keys allow few characters, and the bucket is no place for an api_key in clear."""
    return f"{hashlib.sha256(api_key.encode()).hexdigest()[:24]}.{cls}"


class SharedBudget(RateLimiter):
    """The in-process ``RateLimiter`` with its slots claimed in NATS KV. ``limits`` are the classes it
    shares; any other class (orders: the order gate's) passes through."""

    def __init__(self, bus, api_key: str, *, limits: dict[str, list[tuple[int, int]]] | None = None,
                 clock=time.time, margin: float = MARGIN) -> None:
        super().__init__(limits if limits is not None else {k: v for k, v in LIMITS.items() if k != "orders"},
                         clock, margin)
        self.bus = bus
        self.api_key = api_key
        self.conflicts = 0  # compare-and-set retries (contention between processes)
        self.fallbacks = 0
        self.ahead = AHEAD
        self._kv = None
        self._locks: dict[str, asyncio.Lock] = {}
        # key -> (revision, slots) as this process last wrote it: while no other process claims through the
        # key, the next claim is one compare-and-set on it instead of a read and a write (a conflict re-reads)
        self._written: dict[str, tuple[int, list[float]]] = {}
        self.spares = SPARES
        self.leased = 0  # calls served by a lease (no KV request)
        self._lease: dict[str, list[float]] = {}  # key -> this process's leased slots not used yet (their stamps)
        self._unused: dict[str, list[float]] = {}  # key -> leased slots that lapsed unused: struck at the next write
        self._contended: dict[str, float] = {}  # key -> until when its claims take no lease (a conflict was seen)

    async def _claim(self, cls: str, windows: list[tuple[int, int]]) -> tuple[float, float, bool]:
        try:
            return await asyncio.wait_for(self._claim_shared(cls, windows), KV_TIMEOUT)
        except Exception as e:  # noqa: BLE001 - NATS down or overloaded: trade on this process's budget
            self.fallbacks += 1
            log.warning("shared rate budget unavailable (%r): using this process's own limiter", e)
            return await super()._claim(cls, windows)

    async def _claim_shared(self, cls: str, windows: list[tuple[int, int]]) -> tuple[float, float, bool]:
        lock = self._locks.setdefault(cls, asyncio.Lock())
        async with lock:  # this process's callers in turn: compare-and-set conflicts only between processes
            now = self._clock()
            if self._leased(budget_key(self.api_key, cls), now):
                return now, now, True
            return await self._claim_kv(cls, windows)

    def _leased(self, key: str, now: float) -> bool:
        """A slot of this process's lease on ``key`` taken, if one is still good at ``now``."""
        lease = self._lease.get(key)
        while lease and lease[0] < now:  # lapsed unused: no request was sent for it
            self._unused.setdefault(key, []).append(lease.pop(0))
        if not lease:
            return False
        lease.pop(0)
        self.leased += 1
        return True

    async def _claim_kv(self, cls: str, windows: list[tuple[int, int]]) -> tuple[float, float, bool]:
        if self._kv is None:
            self._kv = await self.bus.kv(subjects.KV_RATE_BUDGET, ttl=3600)
        key = budget_key(self.api_key, cls)
        keep = horizon(windows, self.margin)
        for _ in range(CONFLICT_RETRIES):
            written = self._written.pop(key, None)
            lease: list[float] = []
            if written is not None:
                revision, sent = written
            else:
                try:
                    entry = await self._kv.get(key)
                    revision, sent = entry.revision, _stamps.decode(entry.value) if entry.value else []
                except KeyNotFoundError:
                    revision, sent = 0, []
            now = self._clock()
            sent = [t for t in sent if t > now - keep]
            unused = self._unused.get(key, [])
            for t in unused:
                if t in sent:
                    sent.remove(t)
            at = next_slot(sent, windows, now, self.margin, fifo=False)
            if at - now > self.ahead:
                self._written[key] = (revision, sent)  # still what the key holds (but lapsed leases, struck next)
                return at, now, False
            sent.append(at)
            if at == now and written is not None and now >= self._contended.get(key, 0.0):
                stamp = now + LEASE - self.margin
                while len(lease) < self.spares and next_slot(sent, windows, now, self.margin, fifo=False) == now:
                    sent.append(stamp)
                    lease.append(stamp)
            value = _encode(sent)
            try:
                if revision:
                    revision = await self._update(key, value, revision)
                else:
                    revision = await self._kv.create(key, value)
                self._written[key] = (revision, sent)
                self._unused.pop(key, None)
                if lease:
                    self._lease[key] = lease
                return at, now, True
            except KeyWrongLastSequenceError:
                self.conflicts += 1  # another process claimed a slot first (or the key aged out): re-read it
                self._contended[key] = now + CONTENDED
        raise RuntimeError(f"no slot after {CONFLICT_RETRIES} conflicting claims")

    async def _update(self, key: str, value: bytes, revision: int) -> int:
        """``kv.update(key, value, last=revision)`` without nats-py's KV layer (a regex check of our own hex key
        and its JSON ack decoding for every Kite call: ~1.5% of the execution worker's CPU, issue #18)."""
        try:
            ack = await self.bus.js_store(f"$KV.{subjects.KV_RATE_BUDGET}.{key}", value,
                                          {"Nats-Expected-Last-Subject-Sequence": str(revision)}, KV_TIMEOUT)
        except APIError as e:
            if e.err_code in (10071, 10164):  # the key moved on since ``revision`` (as nats-py's update maps it)
                raise KeyWrongLastSequenceError(description=e.description) from None
            raise
        return ack.seq
