"""A thin typed wrapper over nats-py: every payload is a msgspec Struct, every failure is logged.

* ``publish`` / ``subscribe`` — core NATS (ticks, bars, positions, risk, status).
* ``request`` / ``serve`` — request/reply commands with ``Ok`` / ``Error`` replies; idempotent
  when the request carries an id (``shared/replies.py``).
* ``ensure_streams`` / ``js_publish`` / ``consume`` / ``kv`` — JetStream where delivery must survive
  a restart (signals, orders, broker updates); durable pull consumers with explicit ack
  (``shared/jetstream.py``).
* The dead-letter path: a message that fails to decode, names another user than its subject's
  (``kta.u.<user>.…`` decides whose message it is), or whose handler keeps raising, is logged with
  its subject and kept on ``kta.dlq.<service>`` (stream KTA_DLQ); the worker goes on.
* Authentication: each process connects as its own identity (``creds``; ``shared/natsauth.py``)
  and the server enforces ``shared/natsperms.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import traceback
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import msgspec
import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from shared import messages as m
from shared import natsauth, natsjwt, natsperms, partition, read_batch, replies, subjects, validation
from shared.cancelling import cancel_all
from shared.jetstream import JetStream, decoder_for, foreign_user
from shared.replies import ReplyCache

log = logging.getLogger("kta.bus")

T = TypeVar("T")
_LENGTHS = [b" %d\r\n" % n for n in range(4096)]  # a PUB line's size field, for publish_many
WRITE_NOW_LIMIT = 64 * 1024  # asyncio's default high-water mark: past it the flusher writes (and drains)
Handler = Callable[[T, Msg], Awaitable[None]]
CommandHandler = Callable[[Any, str, Msg], Awaitable[m.Ok | m.Error]]


def auth_options(creds: str, identity: str) -> dict[str, Any]:
    """nats-py connect options that authenticate with a ``.creds`` file (none when ``creds`` is empty);
    the identity's replies arrive on its own inbox prefix, which no other identity may read."""
    path = natsauth.creds_file(creds, identity)
    if path is None:
        return {}
    jwt, key = natsjwt.read_creds(path.read_text())
    name = natsjwt.claims_of(jwt).get("name", identity)
    return {"user_jwt_cb": lambda: jwt.encode(), "signature_cb": lambda nonce: natsjwt.signature(key, nonce),
            "inbox_prefix": natsperms.inbox_prefix(name)}


def _id_header(request_id: str) -> dict[str, str] | None:
    return {replies.HEADER: request_id} if request_id else None


class BusError(RuntimeError):
    pass


class RequestTimeout(BusError):
    pass


class Bus(JetStream):
    """One NATS connection per process, tagged with the service name for logs and the DLQ."""

    def __init__(self, nc: NATS, service: str, replicas: int = 1, js_timeout: float = 5.0) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream(timeout=js_timeout)
        self.service = service
        self.replicas = replicas
        self._tasks: set[asyncio.Task] = set()
        self._pull_subs: list[Any] = []
        self._stopping = False
        self.consumers: dict[str, str] = {}  # durable -> stream, while consumed here (lag metrics)
        self.replies = ReplyCache()  # first outcomes of idempotent commands served here
        self._read_batches: read_batch.ReadBatches | None = None  # reads on their way together (``read``)

    # ---- connection -----------------------------------------------------------------------

    @classmethod
    async def connect(
        cls, url: str, service: str, *, replicas: int = 1, connect_timeout: float = 5.0, name: str = "",
        creds: str = "", js_timeout: float = 5.0,
    ) -> "Bus":
        """Connect as ``service``; ``creds`` is a ``.creds`` file or a directory of them
        (``<creds>/<service>.creds``, see ``shared/natsauth.py``); ``js_timeout``: how long a JetStream
        API call (a KV read, a stream's info) waits for the server's answer."""
        async def disconnected() -> None:
            log.warning("nats disconnected", extra={"service": service})

        async def reconnected() -> None:
            log.info("nats reconnected", extra={"service": service, "server": str(nc.connected_url)})

        async def error(e: Exception) -> None:
            log.warning("nats error: %s", e, extra={"service": service})

        nc = await nats.connect(
            servers=[s.strip() for s in url.split(",") if s.strip()],
            **auth_options(creds, service),
            name=name or f"kta-{service}",
            connect_timeout=connect_timeout,
            reconnect_time_wait=0.5,
            max_reconnect_attempts=-1,
            allow_reconnect=True,
            disconnected_cb=disconnected,
            reconnected_cb=reconnected,
            error_cb=error,
            pending_size=64 * 1024 * 1024,
        )
        return cls(nc, service, replicas, js_timeout)

    async def sync(self, timeout: float = 10.0) -> None:
        """Return once the server has read everything sent on this connection so far: a subscription made
        just before is live. ``nc.flush()`` alone does not promise it — nats-py writes the flush's PING
        straight to the socket, ahead of commands still queued for its flusher task (the SUB just made),
        so the PONG can come back before the server has the subscription, and a peer told "subscribed"
        then publishes to nobody (a process starved of CPU between the two writes: test_budget's child
        that never heard "go"). The first round trip lets the flusher write that queue; the second
        PING follows it."""
        await self.nc.flush(timeout)
        await self.nc.flush(timeout)

    async def close(self) -> None:
        self._stopping = True
        await cancel_all(list(self._tasks))
        for psub in self._pull_subs:
            with contextlib.suppress(Exception):
                await psub.unsubscribe()
        if not self.nc.is_closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.nc.flush(), 1.0)
            with contextlib.suppress(Exception):
                await self.nc.close()

    def spawn(self, coro: Awaitable[Any], name: str = "") -> asyncio.Task:
        """Run a background task owned by the bus (cancelled on close, failures logged)."""
        task = asyncio.ensure_future(coro)
        if name:
            task.set_name(name)
        self._tasks.add(task)

        def done(t: asyncio.Task) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("task %s failed: %r", t.get_name(), t.exception(), extra={"service": self.service})

        task.add_done_callback(done)
        return task

    # ---- core pub/sub -----------------------------------------------------------------------

    async def publish(self, subject: str, msg: msgspec.Struct, headers: dict[str, str] | None = None) -> None:
        await self.nc.publish(subject, m.encode(msg), headers=headers)

    async def publish_raw(self, subject: str, payload: bytes, headers: dict[str, str] | None = None) -> None:
        await self.nc.publish(subject, payload, headers=headers)

    async def publish_many(self, messages: list[tuple[bytes, bytes]]) -> None:
        """Publish encoded messages in order, as ONE write, on the socket when this returns (``write_now``):
        ``(subject as bytes, payload)`` pairs (core NATS, no headers). For the feed's hot path (a frame's
        ticks): per message this costs a few list appends instead of a ``publish`` call each. Buffered while
        reconnecting, like ``publish`` (same limit, same errors)."""
        if not messages:
            return
        nc = self.nc
        if nc.is_closed:
            raise nats.errors.ConnectionClosedError
        parts: list[bytes] = []
        add = parts.extend
        size = 0
        lengths, max_payload = _LENGTHS, nc._max_payload
        for subject, payload in messages:
            n = len(payload)
            if n > max_payload:
                raise nats.errors.MaxPayloadError
            size += n
            add((b"PUB ", subject, lengths[n] if n < 4096 else b" %d\r\n" % n, payload, b"\r\n"))
        blob = b"".join(parts)
        if not nc.is_connected and (nc._max_pending_size <= 0 or
                                    len(blob) + nc._pending_data_size > nc._max_pending_size):
            raise nats.errors.OutboundBufferLimitError
        nc.stats["out_msgs"] += len(messages)
        nc.stats["out_bytes"] += size
        await nc._send_command(blob)  # nats-py's own path for a PUB (pending buffer, flusher)
        if not self.write_now() and nc._flush_queue is not None and nc._flush_queue.empty():
            await nc._flush_pending()

    def write_now(self) -> bool:
        """Hand what the connection holds for its flusher to the socket at once; False (the flusher writes it) while
        not connected or while the socket is not keeping up (its buffer over ``WRITE_NOW_LIMIT``: the flusher then
        waits for it to drain). nats-py writes a publish on its flusher task's next turn, behind every callback
        already ready in the loop: a frame's ticks waited there behind the other connections' frames (p90 6 ms at
        load 8, issue #18). Same bytes, same order: everything pending goes, as the flusher would send it."""
        nc = self.nc
        writer = getattr(nc._transport, "_io_writer", None)
        if writer is None or not nc.is_connected or writer.transport.is_closing() \
                or writer.transport.get_write_buffer_size() > WRITE_NOW_LIMIT:
            return False
        if nc._pending:
            writer.writelines(nc._pending)
            nc._pending = []
            nc._pending_data_size = 0
        return True

    async def subscribe(
        self,
        subject: str,
        kind: Any,
        handler: Handler,
        *,
        queue: str = "",
        pending_msgs_limit: int = 512 * 1024,
    ):
        """Subscribe with a decoder; a payload that does not decode, or a handler that raises,
        is dead-lettered and the subscription goes on."""
        dec = decoder_for(kind)

        async def cb(msg: Msg) -> None:
            try:
                obj = dec.decode(msg.data)
            except (msgspec.DecodeError, msgspec.ValidationError) as e:
                await self.dead_letter(msg.subject, msg.data, f"decode: {e}")
                return
            refused = foreign_user(msg.subject, obj)
            if refused:
                await self.dead_letter(msg.subject, msg.data, refused)
                return
            try:
                await handler(obj, msg)
            except Exception as e:  # noqa: BLE001 - a handler must never kill the worker
                await self.dead_letter(msg.subject, msg.data, f"handler: {e!r}", exc=e)

        return await self.nc.subscribe(subject, queue=queue, cb=cb, pending_msgs_limit=pending_msgs_limit)

    # ---- request / reply --------------------------------------------------------------------

    async def request(self, subject: str, msg: msgspec.Struct, timeout: float = 5.0,
                      request_id: str = "") -> m.Ok | m.Error:
        """One command, one reply. With ``request_id`` the command is idempotent: sending it again
        (after a ``RequestTimeout``) answers with the first outcome instead of doing it twice."""
        try:
            resp = await self.nc.request(subject, m.encode(msg), timeout=timeout, headers=_id_header(request_id))
        except nats.errors.NoRespondersError as e:
            raise BusError(f"no service answers {subject}") from e
        except nats.errors.TimeoutError as e:
            raise RequestTimeout(f"no reply on {subject} within {timeout}s") from e
        return m.reply_decoder.decode(resp.data)

    async def read(self, subject: str, msg: msgspec.Struct, timeout: float = 5.0) -> m.Ok | m.Error:
        """A read (``m.is_read``): as ``request``, but sent in one message with the other reads of the
        same user for the same service asked in the same moment (``shared/read_batch.py``)."""
        if self._read_batches is None:
            self._read_batches = read_batch.ReadBatches(lambda s, c, t: self.request(s, c, timeout=t))
        return await self._read_batches.read(subject, msg, timeout)

    async def gather(
        self, subject: str, msg: msgspec.Struct, expect: Iterable[str], timeout: float = 10.0, request_id: str = ""
    ) -> dict[str, m.Ok | m.Error]:
        """Scatter a command to every service listening on ``subject`` and collect one reply
        from each of ``expect`` (by ``service`` field); missing services are absent from the result."""
        expected = set(expect)
        inbox = self.nc.new_inbox()
        replies: dict[str, m.Ok | m.Error] = {}
        done = asyncio.Event()

        async def cb(rmsg: Msg) -> None:
            try:
                reply = m.reply_decoder.decode(rmsg.data)
            except msgspec.DecodeError:
                return
            replies[reply.service] = reply
            if expected <= replies.keys():
                done.set()

        sub = await self.nc.subscribe(inbox, cb=cb)
        try:
            await self.nc.publish(subject, m.encode(msg), reply=inbox, headers=_id_header(request_id))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(done.wait(), timeout)
        finally:
            await sub.unsubscribe()
        return replies

    async def serve(
        self, subject: str, handler: CommandHandler, *, queue: str = "", accept: Callable[[str], bool] | None = None,
        missed: Callable[[Msg, Callable[[Msg], None]], None] | None = None,
    ) -> Any:
        """Answer commands on ``subject`` (usually ``subjects.cmd_wildcard(service)``).

        ``handler(command, user_id, msg)`` returns Ok or Error; the bus stamps the service name.
        A command that fails to decode gets an Error naming the problem (and is dead-lettered);
        a handler that raises gets an ``internal`` Error (and is dead-lettered). A user ``accept``
        rejects is left to another instance (no reply): partitioned workers answer for their own; such a
        command is handed to ``missed(msg, again)``, and ``again(msg)`` later serves it as if it came then
        (a partition's reads its previous owner left unanswered, ``Partitions.missed``).
        A command carrying a request id is answered once per id (``shared/replies.py``)."""

        chains: dict[str, asyncio.Task] = {}

        async def cb(msg: Msg) -> None:
            enqueue(msg)

        def enqueue(msg: Msg) -> None:
            # nats-py awaits one callback at a time per subscription: a slow command of one user (a
            # StartLive waiting on the broker) would hold up every other user's. Each user gets a chain
            # of their own instead: users answered concurrently, each user's commands in order.
            try:
                key = subjects.user_of(msg.subject)
            except subjects.SubjectError:
                key = ""
            task = self.spawn(after(chains.get(key), msg), name=f"command:{msg.subject}")
            chains[key] = task
            task.add_done_callback(lambda t, k=key: chains.pop(k, None) if chains.get(k) is t else None)

        async def after(previous: asyncio.Task | None, msg: Msg) -> None:
            if previous is not None:
                await asyncio.wait([previous])
            await handle(msg)

        async def handle(msg: Msg) -> None:
            if accept is not None:
                try:
                    if not accept(subjects.user_of(msg.subject)):
                        if missed is not None:
                            missed(msg, enqueue)
                        return
                except subjects.SubjectError:
                    pass  # answered below with bad_request
            request_id = (msg.headers or {}).get(replies.HEADER, "")[: replies.MAX_ID]
            if request_id:
                reply = await self.replies.once(msg.subject, request_id, lambda: answer(msg))
            else:
                reply = await answer(msg)
            if msg.reply:
                reply = msgspec.structs.replace(reply, service=self.service)
                with contextlib.suppress(Exception):
                    await self.nc.publish(msg.reply, m.encode(reply))

        async def answer(msg: Msg, data: bytes | None = None, reads: bool = True) -> m.Ok | m.Error:
            """``data`` (the message's, or one read of an ``m.Reads`` in it) answered by the handler."""
            data = msg.data if data is None else data
            reply: m.Ok | m.Error
            try:
                user_id = subjects.user_of(msg.subject)
                cmd = m.command_decoder.decode(data)
                if not reads and not m.is_read(cmd):
                    raise msgspec.ValidationError(f"{type(cmd).__name__} is not a read: only reads go in `reads`")
            except (msgspec.DecodeError, msgspec.ValidationError, subjects.SubjectError) as e:
                await self.dead_letter(msg.subject, data, f"decode: {e}")
                reply = m.Error(code="bad_request", message=str(e), field=validation.path(e) or None, service=self.service)
            else:
                if isinstance(cmd, m.Reads) and reads:  # several reads in one message (shared/read_batch.py)
                    return await read_batch.answer(cmd, lambda raw: answer(msg, raw, reads=False))
                try:
                    reply = await handler(cmd, user_id, msg)
                except Exception as e:  # noqa: BLE001
                    await self.dead_letter(msg.subject, data, f"handler: {e!r}", exc=e)
                    reply = m.Error(code="internal", message=f"{type(e).__name__}: {e}", service=self.service)
            return msgspec.structs.replace(reply, service=self.service) if reads is False else reply

        return await self.nc.subscribe(subject, queue=queue, cb=cb)

    # ---- dead letters -----------------------------------------------------------------------

    async def dead_letter(self, subject: str, data: bytes, error: str, exc: BaseException | None = None) -> None:
        subject = partition.published(subject)
        log.error(
            "dead-lettered message on %s: %s",
            subject,
            error,
            extra={"service": self.service, "subject": subject, "size": len(data)},
        )
        if exc is not None:
            log.debug("".join(traceback.format_exception(exc)))
        headers = {"Kta-Subject": subject, "Kta-Error": error[:1000], "Kta-Service": self.service}
        try:
            await self.js.publish(subjects.dlq(self.service), data, headers=headers, timeout=2.0)
        except Exception as e:  # noqa: BLE001 - the DLQ must never take the worker down
            log.error("dead-letter publish failed: %r", e, extra={"service": self.service})

