"""A durable pull consumer's standing request: one ``$JS.API.CONSUMER.MSG.NEXT`` for up to ``batch``
messages, lingering on the server for ``lapse`` seconds, and the server sends each message the moment it
is stored — not one request per message (nats-py's ``fetch``) nor one every second per idle consumer.

Per order the execution worker used to send ~8 pull requests (each lone message: a request and, when
more were pending, a ``no_wait`` one and its 404; every idle partition feed a request and its 408 every
second). Now a request is renewed only when it has delivered its batch, lapsed, or a reconnect may have
lost it; an idle consumer sends one every ``lapse`` seconds.

Handing a partition over: ``stop`` wakes the consumer at once (it does not wait out its request); the
messages it holds but has not started are handed back (nak) so the next owner gets them now, and its
inbox is unsubscribed first, so the server drops the request (nats-server skips a waiting pull whose reply
subject has no interest) and never delivers a later message to the old owner. Handed back in order, but
nats-server may redeliver the first behind the others (it tries the dead request with it, then re-queues it
last) when no new owner is pulling yet: order across a handover is not guaranteed (nor was it before)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque

from nats.aio.msg import Msg
from nats.js.client import JetStreamContext

RECHECK = 1.0  # s: a waiting consumer looks at least this often whether a reconnect lost its request
GRACE = 1.0  # s after its lapse a request is renewed even if the server's 408 never came


class StandingPull:
    """Messages of one durable consumer (``psub``: nats-py's pull subscription, for its request subject)."""

    def __init__(self, nc, psub, lapse: float, stop: asyncio.Event | None = None) -> None:
        self.nc = nc
        self.subject = psub._nms  # $JS.API.CONSUMER.MSG.NEXT.<stream>.<durable>
        self.lapse = lapse
        self.stop = stop
        self.inbox = nc.new_inbox()
        self.held: deque[Msg] = deque()  # delivered, not yet taken
        self.owed = 0  # what the request in force may still deliver
        self.ends = 0.0  # monotonic: when it lapses (plus GRACE)
        self.reconnects = -1
        self.sub = None
        self._waiter: asyncio.Future | None = None
        self._watch: asyncio.Task | None = None

    async def start(self) -> StandingPull:
        self.sub = await self.nc.subscribe(self.inbox, cb=self._arrived)
        if self.stop is not None:
            self._watch = asyncio.ensure_future(self._stopped())
        return self

    async def _stopped(self) -> None:
        await self.stop.wait()
        self._wake()

    async def _arrived(self, msg: Msg) -> None:
        if JetStreamContext.is_status_msg(msg):  # 408 lapsed, 409 ended by the server: that request is over
            if not JetStreamContext._is_heartbeat(JetStreamContext.is_status_msg(msg)):
                self.owed = 0
        else:
            self.held.append(msg)
            self.owed = max(0, self.owed - 1)
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    async def next(self, room: int) -> Msg | None:
        """The next message, waiting for it (None: woken without one — a lapse, a reconnect, ``stop``).
        ``room``: how many more the caller can hold; a new request asks for that many."""
        if self.held:
            return self.held.popleft()
        if self.stopped():
            return None
        now = time.monotonic()
        if self.owed <= 0 or now >= self.ends or self.nc.stats["reconnects"] != self.reconnects:
            if room < 1:
                return None
            self.reconnects = self.nc.stats["reconnects"]
            self.owed, self.ends = room, now + self.lapse + GRACE
            await self.nc.publish(self.subject, json.dumps(
                {"batch": room, "expires": int(self.lapse * 1e9)}).encode(), self.inbox)
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        timer = loop.call_later(max(0.0, min(self.ends - now, RECHECK)), self._wake)
        try:
            await self._waiter
        finally:
            timer.cancel()
            self._waiter = None
        return self.held.popleft() if self.held else None

    async def close(self) -> None:
        """Hand back what was delivered and not taken, and drop the request (no interest, no delivery)."""
        if self._watch is not None:
            self._watch.cancel()
        if self.sub is not None:
            with contextlib.suppress(Exception):
                await self.sub.unsubscribe()
        while self.held:
            with contextlib.suppress(Exception):
                await self.held.popleft().nak()

    async def unsubscribe(self) -> None:  # Bus.close treats it like nats-py's pull subscriptions
        await self.close()
