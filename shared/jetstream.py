"""The JetStream half of :class:`shared.bus.Bus`: kta's streams (with the partition transforms of
``shared/partition.py``), idempotent publishes, durable pull consumers that ack after the handler
and dead-letter what cannot be handled, and KV buckets."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import nats
from nats.aio.msg import Msg
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import APIError, BadRequestError, NoStreamResponseError, NotFoundError

from shared import messages as m
from shared import partition, subjects
from shared.pull import StandingPull

log = logging.getLogger("kta.bus")
Handler = Callable[[Any, Msg], Awaitable[Any]]  # None, or a future: ack once it is done

_decoders: dict[Any, msgspec.msgpack.Decoder] = {}


def decoder_for(kind: Any) -> msgspec.msgpack.Decoder:
    dec = _decoders.get(kind)
    if dec is None:
        dec = _decoders[kind] = msgspec.msgpack.Decoder(kind)
    return dec


def foreign_user(subject: str, obj: Any) -> str:
    """Why a payload must be refused: it names a user other than the one its subject belongs to.

    Every per-user subject (``kta.u.<user>.…``) is the authority on whose message it is; the
    permission table decides who may publish there. A payload carrying another ``user_id`` is
    an attempt to act for someone else through a subject one may publish on."""
    if not subjects.is_user_subject(subject):
        return ""
    uid = getattr(obj, "user_id", None)
    if not isinstance(uid, str) or not uid:
        return ""
    try:
        owner = subjects.user_of(subject)
    except subjects.SubjectError:
        return f"unreadable user in subject {subject!r}"
    return "" if uid == owner else f"user mismatch: subject of {owner}, payload names {uid}"


class PubAck(msgspec.Struct):
    """JetStream's answer to a publish (``nats.js.api.PubAck``'s fields), or its error."""

    stream: str = ""
    seq: int = 0
    duplicate: bool = False
    domain: str | None = None
    error: dict | None = None


_pub_ack = msgspec.json.Decoder(PubAck).decode


class JetStream:
    """Mixed into Bus, which provides ``js``, ``replicas``, ``spawn``, ``dead_letter`` and the rest."""

    async def ensure_streams(self, streams: dict[str, list[str]] | None = None) -> None:
        """Create or update kta's streams (idempotent; safe from every process at start-up)."""
        for name, subs in (streams or subjects.STREAMS).items():
            config = StreamConfig(
                name=name,
                subjects=subs,
                retention=RetentionPolicy.LIMITS,
                storage=StorageType.FILE,
                max_age=7 * 24 * 3600,
                duplicate_window=2 * 60,
                num_replicas=self.replicas,
                subject_transform=partition.TRANSFORMS.get(name),
            )
            try:
                await self.js.add_stream(config)
            except BadRequestError:
                await self.js.update_stream(config)

    async def js_publish(self, subject: str, msg: msgspec.Struct, *, msg_id: str = "", timeout: float = 5.0) -> PubAck:
        """Publish to a stream; ``msg_id`` makes a repeat within the duplicate window a no-op."""
        return await self.js_store(subject, m.encode(msg), {"Nats-Msg-Id": msg_id} if msg_id else None, timeout)

    async def js_store(self, subject: str, payload: bytes, headers: dict[str, str] | None = None,
                       timeout: float = 5.0) -> PubAck:
        """What nats-py's ``js.publish`` does, with the server's answer decoded by msgspec: its ``json.loads`` and
        dataclass build were ~1% of the execution worker's CPU (an order's events, outcomes and rate-budget claims
        are stored so: issue #18). Raises nats-py's errors (``NoStreamResponseError``, ``APIError`` by code)."""
        try:
            reply = await self.nc.request(subject, payload, timeout=timeout, headers=headers)
        except nats.errors.NoRespondersError:
            raise NoStreamResponseError from None
        ack = _pub_ack(reply.data)
        if ack.error is not None:
            APIError.from_error(ack.error)  # raises the error's own class (e.g. BadRequestError, err_code set)
        return ack

    async def consume(
        self,
        stream: str,
        durable: str,
        subject_filter: str,
        kind: Any,
        handler: Handler,
        *,
        batch: int = 64,
        ack_wait: float = 30.0,
        max_deliver: int = 5,
        retry_delay: float = 1.0,
        ready: asyncio.Event | None = None,
        stop: asyncio.Event | None = None,
        deliver_policy: DeliverPolicy = DeliverPolicy.ALL,
        key: Callable[[str], str] | None = None,
        idle_wait: float = 30.0,
    ) -> asyncio.Task:
        """Run a durable pull consumer in the background; ack after ``handler`` returns, or, when it
        returns a future (its work goes on without holding up the next message: a signal's broker
        round trip), after that future is done.

        A payload that does not decode is dead-lettered and terminated at once; a handler that
        raises is retried (nak with delay) up to ``max_deliver`` times, then dead-lettered. A handler
        running past ``ack_wait / 3`` keeps its message with in-progress acks; ``stop`` ends the loop.
        ``deliver_policy`` applies when the durable is first created (``NEW``: skip what came before).
        ``key`` (of a message's subject, e.g. its user): a fetched batch's messages of different keys
        are handled concurrently, those of one key one after the other in stream order. A message
        published to an idle consumer is handed over the moment it arrives: one standing request
        (shared/pull.py) asks for up to ``batch`` and lingers on the server ``idle_wait`` s before it is renewed."""
        dec = decoder_for(kind)
        config = ConsumerConfig(
            durable_name=durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=deliver_policy,
            ack_wait=ack_wait,
            max_deliver=max_deliver + 1,
            filter_subject=subject_filter,
            max_ack_pending=10_000,
        )
        psub = await self.js.pull_subscribe(subject_filter, durable=durable, stream=stream, config=config)
        await psub.unsubscribe()  # its inbox is not used: the standing request delivers to its own
        pull = await StandingPull(self.nc, psub, idle_wait, stop).start()
        self._pull_subs.append(pull)
        self.consumers[durable] = stream
        stopped = pull.stopped

        async def next_msg(room: int) -> Msg | None:
            try:
                return await pull.next(room)
            except (nats.errors.ConnectionClosedError, asyncio.CancelledError):
                raise
            except Exception as e:  # noqa: BLE001 - reconnects and the like: keep pulling
                log.warning("pull %s failed: %r", durable, e, extra={"service": self.service})
                await asyncio.sleep(0.5)
                return None

        async def loop() -> None:
            if ready is not None:
                ready.set()
            if key is not None:
                return await keyed()
            while not self._stopping and not stopped():
                msg = await next_msg(batch)
                if msg is not None:
                    await in_turn((msg,))

        async def keyed() -> None:
            """Each key's messages in stream order, keys independent of each other: a key's next
            message is taken as soon as its last one is done, whatever other keys are still doing
            (a user waiting on the broker holds up nobody else); at most ``batch`` in hand."""
            chains: dict[str, deque[Msg]] = {}
            runners: set[asyncio.Task] = set()
            freed = asyncio.Event()

            async def run(chain: str, queue: deque[Msg]) -> None:
                try:
                    while queue:
                        await in_turn((queue[0],))
                        queue.popleft()
                        freed.set()
                finally:
                    chains.pop(chain, None)

            while not self._stopping and not stopped():
                in_hand = sum(len(q) for q in chains.values())
                if in_hand >= batch:
                    freed.clear()
                    await freed.wait()
                    continue
                msg = await next_msg(batch - in_hand)
                if msg is None:
                    continue
                try:
                    chain = key(msg.subject)
                except Exception:  # noqa: BLE001 - no key: handled with the other keyless ones
                    chain = ""
                queue = chains.get(chain)
                if queue is not None:
                    queue.append(msg)
                    continue
                queue = chains[chain] = deque((msg,))
                task = asyncio.ensure_future(run(chain, queue))
                runners.add(task)
                task.add_done_callback(runners.discard)
            if runners:  # stopped: the messages in hand are finished (or handed back) first
                await asyncio.gather(*runners, return_exceptions=True)

        async def in_turn(msgs) -> None:
            for msg in msgs:
                if stopped():  # handed over: the next owner gets the rest of the batch at once
                    with contextlib.suppress(Exception):
                        await msg.nak()
                else:
                    await self._handle_js(msg, dec, handler, max_deliver, retry_delay, ack_wait)

        async def run() -> None:
            try:
                await loop()
            finally:
                self.consumers.pop(durable, None)
                if stop is not None:
                    self._pull_subs.remove(pull)
                    await pull.close()

        return self.spawn(run(), name=f"consume:{durable}")

    async def _handle_js(
        self, msg: Msg, dec, handler: Handler, max_deliver: int, retry_delay: float, ack_wait: float = 30.0
    ) -> None:
        try:
            obj = dec.decode(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            await self.dead_letter(msg.subject, msg.data, f"decode: {e}")
            with contextlib.suppress(Exception):
                await msg.term()
            return
        refused = foreign_user(msg.subject, obj)
        if refused:
            await self.dead_letter(msg.subject, msg.data, refused)
            with contextlib.suppress(Exception):
                await msg.term()
            return
        try:
            tail = await _keeping(msg, handler(obj, msg), ack_wait / 3)
        except Exception as e:  # noqa: BLE001
            await self._failed_js(msg, e, max_deliver, retry_delay)
            return
        if isinstance(tail, asyncio.Future):  # the handler's work goes on: the message is acked when it is done
            self.spawn(self._finish_js(msg, tail, max_deliver, retry_delay, ack_wait), name=f"finish:{msg.subject}")
            return
        with contextlib.suppress(Exception):
            await msg.ack()

    async def _finish_js(self, msg: Msg, tail: asyncio.Future, max_deliver: int, retry_delay: float,
                         ack_wait: float) -> None:
        try:
            await _keeping(msg, tail, ack_wait / 3)
        except Exception as e:  # noqa: BLE001
            await self._failed_js(msg, e, max_deliver, retry_delay)
            return
        with contextlib.suppress(Exception):
            await msg.ack()

    async def _failed_js(self, msg: Msg, e: Exception, max_deliver: int, retry_delay: float) -> None:
        delivered = msg.metadata.num_delivered if msg.metadata else 1
        if delivered >= max_deliver:
            await self.dead_letter(msg.subject, msg.data, f"handler failed {delivered}x: {e!r}", exc=e)
            with contextlib.suppress(Exception):
                await msg.term()
        else:
            log.warning("handler failed on %s (delivery %d), retrying: %r", msg.subject, delivered, e,
                        extra={"service": self.service})
            with contextlib.suppress(Exception):
                await msg.nak(delay=retry_delay * delivered)

    async def kv(self, bucket: str, *, history: int = 1, ttl: float | None = None):
        """Open a KV bucket, creating it if needed. The handle is kept: opening asks the server for the
        stream's info, a round trip that every session read (each dashboard panel) used to pay."""
        handles = self.__dict__.setdefault("_kv_handles", {})
        if (kv := handles.get(bucket)) is not None:
            return kv
        try:
            kv = await self.js.key_value(bucket)
        except (NotFoundError, nats.js.errors.BucketNotFoundError):
            kv = await self.js.create_key_value(
                KeyValueConfig(bucket=bucket, history=history, ttl=ttl, replicas=self.replicas)
            )
        handles[bucket] = kv
        return kv


_pings: set[asyncio.Task] = set()


async def _keeping(msg: Msg, work: Awaitable[Any], every: float) -> Any:
    """Await ``work``, telling JetStream every ``every`` s that the message is still in progress
    (a timer, not a task per message: most handlers finish long before the first tick)."""
    loop = asyncio.get_running_loop()

    def ping() -> None:
        nonlocal timer
        task = loop.create_task(_in_progress(msg))
        _pings.add(task)
        task.add_done_callback(_pings.discard)
        timer = loop.call_later(every, ping)

    timer = loop.call_later(every, ping)
    try:
        return await work
    finally:
        timer.cancel()


async def _in_progress(msg: Msg) -> None:
    with contextlib.suppress(Exception):
        await msg.in_progress()
