"""Tasks whose first step runs at once, in the caller's turn — Python 3.12's eager tasks, for 3.11.

``asyncio.ensure_future`` queues a task's first step behind everything already waiting in the loop. The
execution worker hands a decided signal's orders to a task of their own (the user's next decision does not
wait for the broker's answer); queued, that task got its turn only after every other signal of the bar had
been decided, and the bar's first order left last with the rest (issue #18). ``start`` runs the coroutine
now, up to its first real wait (the broker's answer, a lock held elsewhere), and a task carries it on from
there: the same result, exceptions and cancellation as ``ensure_future``'s task. Until that first wait,
``asyncio.current_task()`` is still the caller's (as in 3.12 without the task swap): code that binds to the
current task there (``asyncio.timeout``) must not run in the first step."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Coroutine
from typing import Any


def start(coro: Coroutine[Any, Any, Any], *, name: str | None = None) -> asyncio.Task:
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()  # the task's own, from its first step on (as create_task's copy)
    try:
        first = context.run(coro.send, None)
    except StopIteration as done:
        return loop.create_task(_finished(done.value), name=name, context=context)
    except (Exception, asyncio.CancelledError) as e:  # noqa: BLE001 - the task raises it, as ensure_future's would
        return loop.create_task(_failed(e), name=name, context=context)
    return loop.create_task(_rest(coro, first), name=name, context=context)


async def _finished(value: Any) -> Any:
    return value


async def _failed(e: BaseException) -> Any:
    raise e


async def _rest(coro: Coroutine[Any, Any, Any], first: Any) -> Any:
    return await _Resumed(coro, first)


class _Resumed:
    """The rest of ``coro`` after its first step: the task is handed what that step waits on (a future,
    or None: one turn of the loop), then every result or exception goes on into ``coro`` as awaiting it would."""

    __slots__ = ("coro", "first")

    def __init__(self, coro: Coroutine[Any, Any, Any], first: Any) -> None:
        self.coro = coro
        self.first = first

    def __await__(self):
        coro, step = self.coro, self.first
        self.coro = self.first = None
        while True:
            try:
                value = yield step
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as e:  # noqa: BLE001 - the task's cancellation or the awaited future's error
                try:
                    step = coro.throw(e)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    step = coro.send(value)
                except StopIteration as done:
                    return done.value
