"""Users partitioned across several copies of a worker, with NATS doing the hashing and the locking.

* **Where a user's messages land**: the per-user streams store ``kta.u.<user>.signals`` as ``...signals.<p>``, ``p``
  the server's FNV-1a ``partition()`` of the user id (``partition_subjects.of`` computes the same to route commands).
* **One durable pull consumer per partition** (``execution-signals-p3``): its ack floor is the partition's progress,
  whoever owns it; one user's messages are handled in order (``per_user``: a batch's users concurrently).
* **Who owns a partition**: a lease in the KV bucket ``kta_leases`` (``<service>.p<n>``), created only if absent,
  renewed every third of its TTL (compare-and-set on its revision), deleted on a clean stop, aged out by the bucket
  TTL when a worker dies. The others' keys come from a KV watch (``shared/lease_view.py``), not a read each tick. A
  taker creates every lease it takes, then starts the partitions. A worker restarted under its name
  (``restartable_instance``) takes its leases back at once. Each worker keeps a membership key
  (``<service>.m.<instance>``) and holds at most ``ceil(PARTITIONS / members)``; copies started together
  (``expected``) claim ``ceil(PARTITIONS / expected)`` each for their first ``grace`` seconds.
* **Hand-over between live workers**: the giver announces it (``m.PartitionHandover``), keeps answering until its
  feeds drained, deletes the leases, announces the release: the peers claim at once (a deleted lease also wakes
  them a moment later, should the announcement be lost); reads neither answered meanwhile are answered by the
  taker (``shared/missed_reads.py``).
* **Commands** for a user are answered only by the owner of its partition (every copy hears them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import nats
import stamina

from shared import cancelling, subjects
from shared import messages as m
from shared.instances import instance_name, restartable_instance, restartable_name  # noqa: F401
from shared.lease_view import LeaseView
from shared.missed_reads import MissedReads
from shared.partition_subjects import (  # noqa: F401 - re-exported: partition.of etc.
    PARTITIONS, TRANSFORMS, feed_subject, fnv1a32, of, published)

log = logging.getLogger("kta.partition")

LEASE_SECONDS = 6.0  # a dead worker's leases age out after this; a survivor claims them at its next tick
KV_LEASES = "kta_leases"
ACK_WAIT = 8.0  # partition consumers; long handlers keep their message with in-progress acks
HANDOVER_MARGIN = 1.0  # reads heard this long before a giver said it was leaving may still be in its queue



@dataclass(frozen=True)
class Feed:
    """One partitioned stream a worker consumes: ``pattern`` is the published subject pattern."""
    stream: str
    durable: str
    pattern: str
    kind: Any
    handler: Callable[[Any, Any], Awaitable[None]]
    batch: int = 32
    per_user: bool = False  # the users sharing the partition are handled concurrently, each in order


Hook = Callable[[int], Awaitable[None]]


class Partitions:
    """Claims this worker's share of partitions and runs its feeds for exactly those."""

    def __init__(self, bus, service: str, feeds: Sequence[Feed] = (), *, on_acquire: Hook | None = None,
                 on_release: Hook | None = None, count: int = PARTITIONS, lease_seconds: float = LEASE_SECONDS,
                 instance: str = "", bucket: str = KV_LEASES, expected: int = 1,
                 grace: float | None = None) -> None:
        self.bus = bus
        self.service = service
        self.feeds = list(feeds)
        self.on_acquire = on_acquire
        self.on_release = on_release
        self.count = count
        self.lease_seconds = lease_seconds
        self.instance = instance or instance_name()
        self.bucket = bucket
        self.owned: set[int] = set()
        self._revisions: dict[int, int] = {}
        self._renewed: dict[int, float] = {}
        self._stops: dict[int, asyncio.Event] = {}
        self._releasing: set[int] = set()  # partitions whose feeds a release is waiting for
        self._tasks: dict[int, list[asyncio.Task]] = {}
        self._kv = None
        self._lock = asyncio.Lock()
        self._loop: asyncio.Task | None = None
        self.members = 1
        self.expected = expected  # copies started together: each claims its share of these at first
        self.grace = lease_seconds if grace is None else grace  # then an absent one's share is taken over
        self._started = 0.0
        self._view: LeaseView | None = None
        self._member_rev, self._member_at = 0, -math.inf  # this worker's last membership write
        self._soon: asyncio.TimerHandle | None = None
        self._wake = asyncio.Event()  # a peer released partitions: tick now
        self._leaving: dict[int, float] = {}  # partition -> when its holder said it was giving it up (monotonic)
        self._sub = None
        self.missed_reads = MissedReads(count)

    def owns(self, user_id: str) -> bool:
        try:
            return of(user_id, self.count) in self.owned
        except subjects.SubjectError:
            return False

    def users_in(self, p: int, users) -> list[str]:
        return [u for u in users if of(u, self.count) == p]

    def missed(self, msg, again: Callable[[Any], None]) -> None:
        """``Bus.serve``'s ``missed``: a command of a partition this worker does not own, kept should it be a
        read left unanswered by a copy giving the partition up (answered here as it is claimed)."""
        try:
            p = of(subjects.user_of(msg.subject), self.count)
        except subjects.SubjectError:
            return
        if p not in self.owned:
            self.missed_reads.add(p, msg, again)

    # ---- life cycle ----------------------------------------------------------------------------

    async def start(self, patience: float = 30.0) -> "Partitions":
        """Claim the first share (retrying while a fresh cluster elects its leaders), then keep ticking."""
        self._started = self._started or time.monotonic()
        # e.g. "no response from stream" while a fresh cluster elects its leaders
        async for attempt in stamina.retry_context(on=Exception, attempts=None, timeout=patience, wait_initial=0.5,
                                                   wait_max=0.5, wait_jitter=0):
            with attempt:
                self._kv = self._kv or await self.bus.kv(self.bucket, ttl=self.lease_seconds)
                self._view = self._view or await LeaseView(self.bus, self._kv, self.service, self.lease_seconds,
                                                           self._freed).open()
                self._sub = self._sub or await self.bus.subscribe(subjects.partitions(self.service),
                                                                  m.PartitionHandover, self._heard)
                await self._take_back()
                await self.tick()
        self._loop = self.bus.spawn(self._run(), name=f"partitions:{self.service}")
        return self

    async def _run(self) -> None:
        while True:
            # every third of a lease (renewals), or as a peer's key ages out (a dead worker's: claimed at once)
            ours = {self._lease_key(p) for p in self._revisions} | {self._member_key(self.instance)}
            wait = min(self.lease_seconds / 3, self._view.next_expiry(ours) + 0.01)
            timer = asyncio.get_running_loop().call_later(wait, self._wake.set)
            try:
                await self._wake.wait()
            finally:
                timer.cancel()
            self._wake.clear()
            try:  # a wake between (a release, an expiry) renews only what is near due: no requests when idle
                await self.tick(full=time.monotonic() - self._member_at >= self.lease_seconds / 3 * 0.9)
            except Exception as e:  # noqa: BLE001 - a NATS hiccup: the next tick tries again
                log.warning("partition tick failed: %r", e, extra={"service": self.service})

    async def _heard(self, ev: m.PartitionHandover, msg) -> None:
        if ev.instance == self.instance or ev.service != self.service:
            return
        if ev.released:
            for p in ev.partitions:
                self._view.released(self._lease_key(p), ev.instance.encode())
            self._wake.set()
        else:
            now = time.monotonic()
            self._leaving.update((p, now) for p in ev.partitions)

    def _freed(self, key: str) -> None:
        """A peer deleted a lease: claimed at a tick a moment later, should its announcement not come first (lost)."""
        if key.startswith(f"{self.service}.p") and (self._soon is None or self._soon.when() < time.monotonic()):
            self._soon = asyncio.get_running_loop().call_later(self.lease_seconds / 30, self._wake.set)

    async def _announce(self, ps: list[int], released: bool) -> None:
        if self.bus.nc.is_connected:
            with contextlib.suppress(Exception):
                await self.bus.publish(subjects.partitions(self.service), m.PartitionHandover(
                    service=self.service, instance=self.instance, partitions=ps, released=released))

    async def close(self) -> None:
        if self._loop is not None:
            await cancelling.cancel_all([self._loop])  # (a cancel lost in a 3.11 wait_for is asked again)
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None
        async with self._lock:
            # leave first, so a peer's share already counts these partitions as each lease is deleted
            await self._forget_key(self._member_key(self.instance))
            await self._release_all(sorted(self.owned | set(self._revisions)), delete=True)
        if self._view is not None:
            await self._view.close()

    async def _forget_key(self, key: str, **kw) -> None:
        """Delete a lease or membership key, briefly: unreachable NATS must not hold up a shutdown
        (the bucket's TTL ages the key out for the survivors anyway)."""
        if not self.bus.nc.is_connected:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._kv.delete(key, **kw), 1.0)

    # ---- leases --------------------------------------------------------------------------------

    def _lease_key(self, p: int) -> str:
        return f"{self.service}.p{p}"

    def _member_key(self, instance: str) -> str:
        return f"{self.service}.m.{instance}"

    async def tick(self, full: bool = True) -> None:
        async with self._lock:
            me, now = self._member_key(self.instance), time.monotonic()
            # its own last write not heard back through the watch (a reconnect, a lost consumer)
            behind = self._member_rev and now - self._member_at > self.lease_seconds / 6 and not self._view.heard(
                me, self._member_rev)
            if full or now - self._member_at >= self.lease_seconds / 6:
                self._member_rev = await self._kv.put(me, str(time.time()).encode())
                self._member_at = time.monotonic()
            await self._renew(older_than=0.0 if full else self.lease_seconds / 6)
            if behind:
                log.info("lease watch behind: watching afresh", extra={"service": self.service})
                await self._view.open()  # (failing, the tick ends here: no claim on an empty view)
            keys = self._view.live()
            members = {k.split(".", 2)[2] for k in keys if k.startswith(f"{self.service}.m.")}
            members.add(self.instance)
            held = {int(k.rsplit(".p", 1)[1]) for k in keys if re.fullmatch(rf"{re.escape(self.service)}\.p\d+", k)}
            self.members = len(members)
            starting = time.monotonic() - self._started < self.grace
            share = math.ceil(self.count / max(self.members, self.expected if starting else 1))
            surplus = sorted(self.owned, reverse=True)[: max(0, len(self.owned) - share)]
            if surplus:
                log.info("releasing partitions %s (share %d of %d members)", surplus, share, self.members,
                         extra={"service": self.service})
                await self._release_all(surplus, delete=True)
            free = sorted((p for p in range(self.count) if p not in held and p not in self._revisions),
                          key=lambda p: fnv1a32(f"{self.instance}/{p}"))
            taken = []
            for p in free:  # each in turn: one lost to a peer starting at the same moment, the next is tried
                if len(self._revisions) >= share:
                    break
                if await self._create(p):
                    taken.append(p)
            await self._start_all(taken)

    async def _take_back(self) -> None:
        """Leases that name this instance, left by its previous run (killed, restarted under the same
        name): claimed now, each only if nobody has written it since (compare-and-set on its revision)."""
        async with self._lock:
            taken = []
            for key, (value, revision) in self._view.live().items():
                if not re.fullmatch(rf"{re.escape(self.service)}\.p\d+", key):
                    continue
                p = int(key.rsplit(".p", 1)[1])
                if p in self.owned or p >= self.count:
                    continue
                if value == self.instance.encode() and await self._create(p, last=revision):
                    taken.append(p)
            await self._start_all(taken)

    async def _renew(self, *, older_than: float = 0.0) -> None:
        lost = []
        # every lease held: created ones not started yet, given up ones (held until their feeds stop, or a peer's
        # would start beside a handler of theirs still running)
        for p in sorted(self._revisions):
            if time.monotonic() - self._renewed.get(p, 0.0) < older_than:
                continue
            try:
                self._revisions[p] = await self._kv.update(self._lease_key(p), self.instance.encode(),
                                                           last=self._revisions[p])
                self._renewed[p] = time.monotonic()
            except nats.js.errors.KeyWrongLastSequenceError:
                if await self._still_mine(p):  # an earlier renewal landed but its answer was lost
                    continue
                log.warning("lease of partition %d was lost", p, extra={"service": self.service})
                lost.append(p)
            except Exception as e:  # noqa: BLE001 - unknown outcome: keep it only while surely ours
                if time.monotonic() - self._renewed[p] > self.lease_seconds * 0.8:
                    log.warning("cannot renew partition %d (%r): letting it go", p, e,
                                extra={"service": self.service})
                    lost.append(p)
        if gone := [p for p in lost if p in self._releasing]:  # its release, under way, finishes it
            self.owned.difference_update(gone)
        for p in (p for p in lost if p not in self._stops and p not in self._releasing):  # created, not started
            self._revisions.pop(p, None)
            self._renewed.pop(p, None)
        lost = [p for p in lost if p in self._stops and p not in self._releasing]
        # let go together: a worker that stalled past the TTL loses them all, and one after another each
        # waited out its feed's fetch (a second each, the partitions' commands unanswered meanwhile)
        if lost:
            await self._release_all(lost, delete=False)

    async def _still_mine(self, p: int) -> bool:
        """The lease still names this instance (nobody else can have written it): adopt its revision."""
        try:
            entry = await self._kv.get(self._lease_key(p))
        except Exception:  # noqa: BLE001 - gone or unreadable: not provably ours
            return False
        if entry is None or entry.value != self.instance.encode():
            return False
        self._revisions[p] = entry.revision
        self._renewed[p] = time.monotonic()
        return True

    async def _create(self, p: int, last: int = 0) -> bool:
        """Create the lease (``last``: update the one at that revision, this instance's own from before a restart)."""
        try:
            if last:
                self._revisions[p] = await self._kv.update(self._lease_key(p), self.instance.encode(), last=last)
            else:
                self._revisions[p] = await self._kv.create(self._lease_key(p), self.instance.encode())
        except (nats.js.errors.KeyWrongLastSequenceError, nats.js.errors.KeyNotFoundError):
            # someone else was quicker, or the key is still there (aged out by its TTL a moment late; create's read
            # of it then finds it gone: KeyNotFoundError): tried again a moment later
            self._view.postpone(self._lease_key(p), self.lease_seconds / 30)
            return False
        self._renewed[p] = time.monotonic()
        log.info("acquired partition %d%s", p, " (this instance's before its restart)" if last else "",
                 extra={"service": self.service})
        return True

    async def _start_all(self, ps: list[int]) -> None:
        """Start partitions whose leases were all created first (none left for a peer meanwhile), renewing them as
        they come due: a start (desks, feeds' consumers) takes ~1 s on a loaded machine; five outlived a lease."""
        for p in ps:
            if p in self._revisions:  # (not lost meanwhile)
                await self._start(p)
            await self._renew(older_than=self.lease_seconds / 3)

    async def _start(self, p: int) -> None:
        stop = self._stops[p] = asyncio.Event()
        tasks = self._tasks[p] = []
        try:
            if self.on_acquire is not None:
                await self.on_acquire(p)
            self.owned.add(p)
            since = self._leaving.pop(p, -math.inf) - HANDOVER_MARGIN  # (none announced: all the kept ones)
            if replayed := self.missed_reads.replay(p, since):
                log.info("answering %d reads of partition %d left unanswered while it changed hands", replayed, p,
                         extra={"service": self.service})
            for f in self.feeds:
                tasks.append(await self.bus.consume(f.stream, f"{f.durable}-p{p}", feed_subject(f.pattern, p), f.kind,
                                                    f.handler, batch=f.batch, ack_wait=ACK_WAIT, stop=stop,
                                                    key=subjects.user_of if f.per_user else None))
        except Exception as e:  # noqa: BLE001 - e.g. its consumer without a leader (a NATS node just died)
            # owned with a feed that never started, its users' signals would wait for ever (a cluster test on a
            # loaded machine): given back whole, claimed again at a tick, here or by a peer
            log.warning("partition %d not taken (%r): its lease is given back", p, e, extra={"service": self.service})
            await self._release_all([p], delete=True, announce=False)  # (peers told would fail alike, at once)

    async def _release_all(self, ps: list[int], *, delete: bool, announce: bool = True) -> None:
        """Finish the messages in hand, stop the feeds (all partitions at once: each may be
        waiting out a fetch), drop the partitions' state, then free the leases. Given away (``delete``), a
        partition's commands are still answered here until its feeds have stopped; lost, not a moment more."""
        if delete and ps and announce:
            await self._announce(ps, released=False)
        tasks = []
        for p in ps:
            if not delete:
                self.owned.discard(p)
            stop = self._stops.pop(p, None)
            if stop is not None:
                stop.set()
            tasks += self._tasks.pop(p, [])
        if tasks:
            self._releasing.update(ps)
            try:
                await self._drain(tasks)
            finally:
                self._releasing.difference_update(ps)
        for p in ps:
            self.owned.discard(p)
            if self.on_release is not None:
                try:
                    await self.on_release(p)
                except Exception as e:  # noqa: BLE001
                    log.error("release hook of partition %d: %r", p, e, extra={"service": self.service})
            rev = self._revisions.pop(p, None)
            self._renewed.pop(p, None)
            if delete and rev is not None:
                await self._forget_key(self._lease_key(p), last=rev)
        if delete and ps and announce:
            await self._announce(ps, released=True)

    async def _drain(self, tasks: list[asyncio.Task]) -> None:
        """Wait up to the ack wait for a release's feeds to finish their messages, renewing the leases as they come
        due: a handler stuck on the broker must not cost the worker every other partition it holds, nor let a peer
        start the feed of one being given up while its handler still runs."""
        deadline, pending = time.monotonic() + ACK_WAIT, set(tasks)
        while pending and (left := deadline - time.monotonic()) > 0:
            _done, pending = await asyncio.wait(pending, timeout=min(left, self.lease_seconds / 6))
            if pending:
                await self._renew(older_than=self.lease_seconds / 3)
        for task in pending:  # a handler that hangs: its message comes back after the ack wait
            task.cancel()

    def status(self) -> dict[str, Any]:
        return {"partitions": len(self.owned), "members": self.members,
                "detail": "partitions " + ",".join(map(str, sorted(self.owned)))}
