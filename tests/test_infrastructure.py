"""The test kit itself: the polls fail with what they waited for, and the KV state a worker restores at
start is emptied and the work streams purged between tests."""

from __future__ import annotations

import nats
import pytest

from shared import partition
from shared import subjects as s
from shared.subjects import ANY
from tests.helpers import eventually, eventually_blocking
from tests.natsstate import RESTORED_AT_START, WORK_STREAMS

BUCKET_TTL = {partition.KV_LEASES: partition.LEASE_SECONDS}


async def test_eventually_returns_the_value_or_names_what_it_waited_for():
    assert await eventually(lambda: 42, 1, "a constant") == 42
    with pytest.raises(AssertionError, match="timed out after 0.1s waiting for nothing"):
        await eventually(lambda: None, 0.1, "nothing")
    with pytest.raises(AssertionError, match="waiting for never"):
        eventually_blocking(lambda: 0, 0.1, "never", poll=0.01)


async def test_the_janitor_empties_what_workers_restore(bus, nats_janitor):
    for name in RESTORED_AT_START:
        kv = await bus.kv(name, ttl=BUCKET_TTL.get(name))  # as the worker creates it: the session keeps it
        await kv.put("LEFTOVER", b"\x80")
        nats_janitor.empty()
        with pytest.raises(Exception):  # noqa: B017 - KeyNotFound / NoKeys, whichever nats-py raises
            await kv.get("LEFTOVER")


async def test_the_janitor_purges_what_no_worker_consumed(bus, nats_janitor):
    """A durable consumer that resumes in the next test (a worker binding the same durable, at its ack floor)
    finds nothing this test published and left unconsumed, in any work stream."""
    stream = s.STREAM_SIGNALS
    psub = await bus.js.pull_subscribe(s.signals(ANY), durable="janitor-probe", stream=stream)
    try:
        await bus.js.publish(s.signals("LEFT01"), b"left by an earlier test")
        await bus.js.publish(s.alerts("LEFT01"), b"left by an earlier test")
        nats_janitor.empty()
        for name in WORK_STREAMS:
            assert (await bus.js.stream_info(name)).state.messages == 0, name
        assert (await bus.js.consumer_info(stream, "janitor-probe")).num_pending == 0
        with pytest.raises(nats.errors.TimeoutError):
            await psub.fetch(1, timeout=0.5)
    finally:
        await bus.js.delete_consumer(stream, "janitor-probe")
