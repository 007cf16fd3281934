"""Commands idempotent by request id over a real nats-server: a retry after a timeout gets the first
outcome instead of doing the thing twice (before: the first still took effect, the retry got 409)."""

from __future__ import annotations

import asyncio

import pytest

from shared import messages as m
from shared import subjects as s
from shared.bus import RequestTimeout
from tests.helpers import connect


class Strategies:
    """A serving side that refuses a second strategy of the same name, like the strategy worker."""

    def __init__(self) -> None:
        self.added: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def handle(self, cmd, user_id, msg):
        await self.gate.wait()  # a slow command path (seeding, a slow broker)
        if cmd.strategy in self.added:
            return m.Error(code="exists", message=f"{cmd.strategy} exists")
        self.added.append(cmd.strategy)
        return m.Ok(data={"strategy_id": f"{user_id}-{len(self.added)}"})


@pytest.fixture
async def served(nats_server):
    server, client = await connect(nats_server, "idem"), await connect(nats_server, "idemclient")
    strategies = Strategies()
    await server.serve(s.cmd_wildcard("idem"), strategies.handle)
    await server.sync()  # the subscription is live at the server before the other connection asks (Bus.sync)
    yield strategies, client, server
    await client.close()
    await server.close()


async def test_a_retry_after_a_timeout_answers_with_the_first_outcome(served):
    strategies, client, server = served
    subject = s.cmd("IDEM01", "idem", "add")
    strategies.gate.clear()
    with pytest.raises(RequestTimeout):  # the worker is slow: the caller gives up, the command goes on
        await client.request(subject, m.AddStrategy(strategy="rsi"), timeout=0.3, request_id="req-1")
    retry = asyncio.create_task(client.request(subject, m.AddStrategy(strategy="rsi"), timeout=10,
                                               request_id="req-1"))
    strategies.gate.set()
    first = await retry
    assert isinstance(first, m.Ok) and first.data == {"strategy_id": "IDEM01-1"}
    assert strategies.added == ["rsi"]  # done once
    again = await client.request(subject, m.AddStrategy(strategy="rsi"), request_id="req-1")
    assert again == first and server.replies.replayed == 2

    # a new action (a new id) is a new command: the worker's own rules apply
    other = await client.request(subject, m.AddStrategy(strategy="rsi"), request_id="req-2")
    assert isinstance(other, m.Error) and other.code == "exists"


async def test_ids_are_per_user_and_commands_without_one_run_every_time(served):
    strategies, client, _ = served
    a = await client.request(s.cmd("IDEMA", "idem", "add"), m.AddStrategy(strategy="ema"), request_id="same")
    b = await client.request(s.cmd("IDEMB", "idem", "add"), m.AddStrategy(strategy="vwap"), request_id="same")
    assert a.data == {"strategy_id": "IDEMA-1"} and b.data == {"strategy_id": "IDEMB-2"}  # not IDEMA's reply
    plain = [await client.request(s.cmd("IDEMA", "idem", "add"), m.AddStrategy(strategy="macd")) for _ in (1, 2)]
    assert isinstance(plain[0], m.Ok) and isinstance(plain[1], m.Error) and plain[1].code == "exists"
