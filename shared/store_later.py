"""A message stored in its stream without waiting for the stream's ack: for what the caller has journaled first
(an outcome: ``execution_worker/outcomes.py``), where the journal is the truth and is told again on start.

``Bus.js_store`` awaits the ack: a round trip on the caller's path (a fill's outcome before the position's stop is
placed) and a waiting task with its timer for every message (issue #18). Here the message is published with a reply
subject — in call order with every other publish of the connection, so a user's outcomes reach the stream in the
order of their seq, as before — and the ack is checked by a callback when it comes. One the stream did not give (no
stream answering, an error, none within ``timeout``) is published again with the same message id (the stream keeps
it once) after each of ``RETRIES``, then logged: it is in the journal, and the worker's start tells it again."""

from __future__ import annotations

import asyncio
import logging

import msgspec
from nats.aio.msg import Msg

from shared import messages as m
from shared.jetstream import _pub_ack

log = logging.getLogger("kta.bus")
RETRIES = (1.0, 2.0, 4.0, 8.0, 16.0)  # seconds before each new try of a message the stream did not store
NO_RESPONDERS = "503"


async def store(bus, subject: str, msg: msgspec.Struct, *, msg_id: str, timeout: float = 5.0) -> None:
    """Publish ``msg`` to its stream (``msg_id``: a repeat within the duplicate window is a no-op); returns once it is
    handed to the connection. Raises what ``publish`` raises (the connection closed): nothing was sent."""
    await _publish(bus, subject, m.encode(msg), {"Nats-Msg-Id": msg_id}, timeout, 0)


class _Answers:
    """The stores' acks on one wildcard inbox subscription of the connection (nats-py's public ``subscribe``; its own
    request plumbing is private and may change between releases), each matched to its waiting future by its token."""

    def __init__(self, nc) -> None:
        self.nc = nc
        self.prefix = ""
        self.waiting: dict[str, asyncio.Future] = {}
        self._count = 0
        self._subscribing = asyncio.Lock()

    async def inbox(self) -> tuple[str, str]:
        """A new reply subject and its token."""
        if not self.prefix:
            async with self._subscribing:
                if not self.prefix:
                    await self._subscribe()
        self._count += 1
        token = str(self._count)
        return self.prefix + token, token

    async def _subscribe(self) -> None:
        base = self.nc.new_inbox()
        await self.nc.subscribe(base + ".*", cb=self._arrived)
        self.prefix = base + "."

    async def _arrived(self, reply: Msg) -> None:
        answer = self.waiting.pop(reply.subject[len(self.prefix):], None)
        if answer is not None and not answer.done():
            answer.set_result(reply)


def _answers(bus) -> _Answers:
    answers = bus.__dict__.get("_store_answers")
    if answers is None or answers.nc is not bus.nc:
        answers = bus.__dict__["_store_answers"] = _Answers(bus.nc)
    return answers


async def _publish(bus, subject: str, payload: bytes, headers: dict[str, str], timeout: float, tried: int) -> None:
    answers = _answers(bus)
    inbox, token = await answers.inbox()
    loop = asyncio.get_running_loop()
    answer: asyncio.Future = loop.create_future()
    answers.waiting[token] = answer
    timer = loop.call_later(timeout, answer.cancel)

    def answered(f: asyncio.Future) -> None:
        answers.waiting.pop(token, None)
        timer.cancel()
        problem = "no answer" if f.cancelled() else _problem(f.result())
        if problem:
            _again(bus, subject, payload, headers, timeout, tried, problem)

    answer.add_done_callback(answered)
    try:
        await bus.nc.publish(subject, payload, reply=inbox, headers=headers)
    except BaseException:
        answer.remove_done_callback(answered)
        answers.waiting.pop(token, None)
        timer.cancel()
        raise


def _problem(reply: Msg) -> str:
    if reply.headers and reply.headers.get("Status") == NO_RESPONDERS:
        return "no stream answered"
    try:
        ack = _pub_ack(reply.data)
    except msgspec.DecodeError:
        return f"an unreadable answer {reply.data[:80]!r}"
    return "" if ack.error is None else f"{ack.error.get('description', '')} ({ack.error.get('err_code', '')})"


def _again(bus, subject: str, payload: bytes, headers: dict[str, str], timeout: float, tried: int,
           problem: str) -> None:
    if tried >= len(RETRIES) or bus.nc.is_closed:
        log.error("%s not stored (%s) after %d tries: in the journal, told again when the worker starts",
                  subject, problem, tried + 1, extra={"service": bus.service})
        return
    log.warning("%s not stored (%s): publishing it again in %.0f s", subject, problem, RETRIES[tried],
                extra={"service": bus.service})

    async def later() -> None:
        await asyncio.sleep(RETRIES[tried])
        try:
            await _publish(bus, subject, payload, headers, timeout, tried + 1)
        except Exception as e:  # noqa: BLE001 - the connection is gone: the journal keeps it for the start
            _again(bus, subject, payload, headers, timeout, tried + 1, repr(e))

    bus.spawn(later(), name=f"store-again:{subject}")
