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
import secrets

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


async def _publish(bus, subject: str, payload: bytes, headers: dict[str, str], timeout: float, tried: int) -> None:
    nc = bus.nc
    if not nc._resp_sub_prefix:  # nats-py's one inbox subscription for every request's answer
        await nc._init_request_sub()
    token = nc._nuid.next()
    token.extend(secrets.token_hex(2).encode())
    key = token.decode()
    inbox = nc._resp_sub_prefix[:]
    inbox.extend(token)
    loop = asyncio.get_running_loop()
    answer: asyncio.Future = loop.create_future()
    nc._resp_map[key] = answer  # where nats-py's inbox callback sets the answer, as for its own requests
    timer = loop.call_later(timeout, answer.cancel)

    def answered(f: asyncio.Future) -> None:
        nc._resp_map.pop(key, None)
        timer.cancel()
        problem = "no answer" if f.cancelled() else _problem(f.result())
        if problem:
            _again(bus, subject, payload, headers, timeout, tried, problem)

    answer.add_done_callback(answered)
    try:
        await nc.publish(subject, payload, reply=inbox.decode(), headers=headers)
    except BaseException:
        answer.remove_done_callback(answered)
        nc._resp_map.pop(key, None)
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
