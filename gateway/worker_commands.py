"""Commands to the workers over NATS, as the trading facade sends them (``gateway.trading.Trading`` inherits
this): one service asked (``bus.request``, a page's reads batched in ``bus.read``) or the live services
gathered (``cmd.live.*``). Identical reads in flight are shared; a command that changes something carries a
request id so its one retry after a timeout cannot act twice. A worker's ``m.Error`` becomes a
``TradingError`` with an HTTP status and the field it names; a worker that does not answer becomes a 503
saying which one — and, for a change, that its outcome is unknown."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import msgspec

from gateway.trading_error import TradingError
from shared import messages as m
from shared import subjects
from shared.broker_sessions import SessionStoreUnavailable
from shared.bus import Bus, BusError, RequestTimeout

log = logging.getLogger("kta.gateway.trading")

LIVE_SERVICES = ("ticker", "strategy", "execution")

# m.Error.code -> HTTP status
_STATUS = {"bad_request": 400, "bad_params": 400, "unsupported": 400, "not_found": 404, "exists": 409,
           "broker_not_connected": 409, "kill_switch": 409, "quota": 409, "internal": 502,
           SessionStoreUnavailable.code: 503, "desk_moved": 503, "broker_unavailable": 503, "broker_error": 502}  # desk_moved: cut off by a partition move, retryable


def _verb(cmd: msgspec.Struct) -> str:
    """The subject verb of a command is its tag (``add_strategy``, ``start_live``, ...)."""
    return type(cmd).__struct_config__.tag


def from_reply(err: m.Error) -> TradingError:
    """A refusal (4xx: a field, a risk rule, the broker's answer) reads as the worker wrote it for the trader; a
    failure of kta's own (5xx) says which worker it came from."""
    status = _STATUS.get(err.code, 400)
    service = f"{err.service} worker: " if err.service and status >= 500 else ""
    return TradingError(status, service + err.message, err.field, err.code)


def _is_query(cmd: msgspec.Struct) -> bool:
    """Reads change nothing: they need no request id (and their replies are not worth remembering)."""
    return type(cmd).__name__.startswith(("Get", "List", "Scan"))


def _unknown_outcome(service: str, cmd: msgspec.Struct, timeout: float) -> str:
    if _is_query(cmd):
        return f"the {service} worker did not answer within {timeout:g} s; try again in a moment"
    return (f"the {service} worker did not answer within {timeout:g} s (asked twice): the outcome of "
            f"{_verb(cmd).replace('_', ' ')} is unknown — it may still take effect. Reload the page and check "
            "the current state (strategies, orders, positions, risk) before doing it again.")


async def _join(shared: asyncio.Future, wait: float) -> Any:
    """``await asyncio.wait_for(asyncio.shield(shared), wait)`` with one future and one timer instead of three
    futures, two timers' worth of callbacks and a task wrapper check (a dashboard joins ~11 reads: that plumbing
    was ~9 % of its gateway CPU, py-spy). The reader's own timeout raises ``asyncio.TimeoutError``; the reader
    cancelled (a closed page) or timed out leaves ``shared`` running for the others."""
    if shared.done():
        return shared.result()
    loop = asyncio.get_running_loop()
    mine = loop.create_future()

    def settle(done: asyncio.Future) -> None:
        if mine.done():
            return
        if done.cancelled():
            mine.cancel()
        elif (error := done.exception()) is not None:
            mine.set_exception(error)
        else:
            mine.set_result(done.result())

    def expire() -> None:
        if not mine.done():
            mine.set_exception(asyncio.TimeoutError())

    shared.add_done_callback(settle)
    timer = loop.call_later(wait, expire)
    try:
        return await mine
    finally:
        timer.cancel()
        shared.remove_done_callback(settle)


def ready(value: Any) -> asyncio.Future:
    """``value`` as a finished future: what a gather is handed for an answer already kept. Handed a coroutine,
    gather wraps it in a task (~10 µs of scheduling) only to return the same value; a dashboard's gathers had ~5."""
    future = asyncio.get_running_loop().create_future()
    future.set_result(value)
    return future


class WorkerCommands:
    def __init__(self, bus: Bus, timeout: float) -> None:
        self.bus = bus
        self.timeout = timeout
        self._reads: dict[tuple, asyncio.Future] = {}  # identical reads in flight (``command``)
        self._writes: dict[str, int] = {}  # user -> commands that change something, so far

    async def command(self, user_id: str, service: str, cmd: msgspec.Struct, timeout: float | None = None) -> Any:
        """One command to one service; the ``Ok`` data (shared with identical reads: not to be changed),
        or a TradingError.

        Identical reads of a user in flight together share one request (a dashboard asks for the positions
        for its table and for its P&L, for the risk summary for its status bar and its risk panel): a read
        asked after a command of the user's that changes something never joins one asked before it."""
        if not _is_query(cmd):
            self._writes[user_id] = self._writes.get(user_id, 0) + 1
            return await self._command(user_id, service, cmd, timeout)
        key = (user_id, service, self._writes.get(user_id, 0), msgspec.msgpack.encode(cmd))
        shared = self._reads.get(key)
        if shared is None:
            shared = self._reads[key] = asyncio.ensure_future(self._command(user_id, service, cmd, timeout))
            shared.add_done_callback(lambda f: (self._reads.pop(key, None), f.cancelled() or f.exception()))
        wait = timeout or self.timeout
        try:  # each reader keeps its own patience; one leaving (a closed page) does not cancel the others'
            return await _join(shared, wait)
        except asyncio.TimeoutError:
            raise TradingError(503, _unknown_outcome(service, cmd, wait)) from None

    async def _command(self, user_id: str, service: str, cmd: msgspec.Struct, timeout: float | None) -> Any:
        """A command that changes something carries a request id, so the one retry after a timeout is
        safe: the worker answers it with the first outcome instead of doing it twice. When even the
        retry times out the outcome is unknown, and the 503 says so."""
        subject, timeout = subjects.cmd(user_id, service, _verb(cmd)), timeout or self.timeout
        request_id = "" if _is_query(cmd) else uuid.uuid4().hex
        for attempt in (1, 2):
            try:
                if m.is_read(cmd):  # a page's reads of one worker go in one message (shared/read_batch.py)
                    reply = await self.bus.read(subject, cmd, timeout=timeout)
                else:
                    reply = await self.bus.request(subject, cmd, timeout=timeout, request_id=request_id)
                break
            except RequestTimeout:
                if request_id and attempt == 1:
                    log.warning("%s %s timed out; retrying with the same request id", service, _verb(cmd))
                    continue
                raise TradingError(503, _unknown_outcome(service, cmd, timeout)) from None
            except BusError as e:  # nobody listening: nothing was done
                raise TradingError(503, f"the {service} worker is not answering ({e}); is it running?") from None
            except OverflowError:  # the bus carries 64-bit integers; the API's bodies say so per field
                raise TradingError(400, "a whole number in the request is too large (at most 19 digits)") from None
        if isinstance(reply, m.Error):
            raise from_reply(reply)
        return reply.data

    async def live_command(self, user_id: str, cmd: msgspec.Struct, timeout: float = 15.0,
                           expect: tuple[str, ...] = LIVE_SERVICES) -> dict[str, m.Ok | m.Error]:
        if not expect:
            return {}
        self._writes[user_id] = self._writes.get(user_id, 0) + 1  # Start / Stop: later reads do not join earlier ones
        return await self.bus.gather(subjects.cmd(user_id, "live", _verb(cmd)), cmd, expect, timeout=timeout,
                                     request_id=uuid.uuid4().hex)
