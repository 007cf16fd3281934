"""shared/eager.py: a task whose first step runs in the caller's turn, and is otherwise a task like any."""

import asyncio
import contextvars

import pytest

from shared import eager

seen = contextvars.ContextVar("seen", default="")


async def test_the_first_step_runs_before_start_returns_and_the_rest_in_the_task():
    steps = []
    gate = asyncio.Event()

    async def work():
        steps.append("first")
        await gate.wait()
        steps.append("rest")
        return 42

    task = eager.start(work())
    assert steps == ["first"]  # ensure_future's task would not have started yet
    queued = asyncio.ensure_future(work())
    assert steps == ["first"]
    gate.set()
    assert await task == 42 and await queued == 42
    assert steps == ["first", "first", "rest", "rest"]


async def test_a_coroutine_done_in_its_first_step_gives_a_finished_task():
    async def quick():
        return "done"

    async def broken():
        raise ValueError("bad signal")

    assert await eager.start(quick()) == "done"
    with pytest.raises(ValueError, match="bad signal"):
        await eager.start(broken())


async def test_results_errors_and_bare_yields_go_on_into_the_coroutine():
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    failing = loop.create_future()

    async def work():
        await asyncio.sleep(0)  # a bare yield first: one turn of the loop
        got = await fut
        try:
            await failing
        except KeyError as e:
            return got, str(e)

    task = eager.start(work())
    await asyncio.sleep(0)
    fut.set_result("answer")
    await asyncio.sleep(0)
    failing.set_exception(KeyError("gone"))
    assert await task == ("answer", "'gone'")


async def test_cancelling_the_task_cancels_what_it_waits_on_and_runs_its_cleanup():
    cleaned = asyncio.Event()
    waiting_on = asyncio.get_running_loop().create_future()

    async def work():
        try:
            await waiting_on
        finally:
            cleaned.set()

    task = eager.start(work())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned.is_set() and waiting_on.cancelled()


async def test_the_task_keeps_one_context_from_its_first_step_on_apart_from_the_callers():
    async def work():
        seen.set("mine")
        await asyncio.sleep(0)
        return seen.get()

    task = eager.start(work())
    assert seen.get() == ""  # the caller's context is untouched
    assert await task == "mine"
