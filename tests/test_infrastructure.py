"""The test kit itself: the polls fail with what they waited for, and the KV state a worker restores at
start is emptied between tests."""

from __future__ import annotations

import pytest

from tests.helpers import eventually, eventually_blocking
from tests.natsstate import RESTORED_AT_START


async def test_eventually_returns_the_value_or_names_what_it_waited_for():
    assert await eventually(lambda: 42, 1, "a constant") == 42
    with pytest.raises(AssertionError, match="timed out after 0.1s waiting for nothing"):
        await eventually(lambda: None, 0.1, "nothing")
    with pytest.raises(AssertionError, match="waiting for never"):
        eventually_blocking(lambda: 0, 0.1, "never", poll=0.01)


async def test_the_janitor_empties_what_workers_restore(bus, nats_janitor):
    for name in RESTORED_AT_START:
        kv = await bus.kv(name)
        await kv.put("LEFTOVER", b"\x80")
        nats_janitor.empty()
        with pytest.raises(Exception):  # noqa: B017 - KeyNotFound / NoKeys, whichever nats-py raises
            await kv.get("LEFTOVER")
