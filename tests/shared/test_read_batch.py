"""Reads of one user for one service asked together travel as one message each way (``Bus.read``,
shared/read_batch.py), each answered by the service's handler as if alone; against a real NATS server."""

import asyncio

from nats.aio.msg import Msg

from shared import messages as m
from shared import subjects


async def _spy(bus, wire: list[str]):
    async def seen(msg: Msg) -> None:
        wire.append(msg.subject.rsplit(".", 1)[1])  # the verb
    return await bus.nc.subscribe("kta.u.*.cmd.>", cb=seen)


async def test_reads_asked_together_go_as_one_message_and_each_gets_its_own_answer(bus):
    handled: list[tuple[str, str]] = []

    async def execution(cmd, user_id, msg):
        handled.append((user_id, type(cmd).__name__))
        if isinstance(cmd, m.GetOrders):
            raise RuntimeError("journal gone")  # one read failing fails that read only
        return m.Ok(data={"read": type(cmd).__name__, "limit": getattr(cmd, "limit", None)})

    wire: list[str] = []
    subs = [await bus.serve(subjects.cmd_wildcard("execution"), execution), await _spy(bus, wire)]
    try:
        def read(user: str, cmd):
            return bus.read(subjects.cmd(user, "execution", type(cmd).__struct_config__.tag), cmd)

        async def nested():  # a panel that asks from inside a gather of its own (a page's P&L panel)
            return (await asyncio.gather(read("DEMO01", m.GetTrades(limit=7))))[0]

        positions, orders, trades, other = await asyncio.gather(
            read("DEMO01", m.GetPositions()), read("DEMO01", m.GetOrders(limit=3)), nested(),
            read("DEMO02", m.GetPositions()))
        assert positions == m.Ok(service="test", data={"read": "GetPositions", "limit": None})
        assert isinstance(orders, m.Error) and orders.code == "internal" and "journal gone" in orders.message
        assert trades.data == {"read": "GetTrades", "limit": 7}
        assert other.data["read"] == "GetPositions"
        await bus.nc.flush()
        assert sorted(wire) == ["get_positions", "reads"]  # DEMO01's three in one message, DEMO02's alone
        assert sorted(handled) == [("DEMO01", "GetOrders"), ("DEMO01", "GetPositions"), ("DEMO01", "GetTrades"),
                                   ("DEMO02", "GetPositions")]
        alone = await read("DEMO01", m.GetPositions())  # asked alone: sent as itself
        await bus.nc.flush()
        assert alone.data["read"] == "GetPositions" and wire[-1] == "get_positions"
    finally:
        for sub in subs:
            await sub.unsubscribe()


async def test_only_reads_are_answered_inside_reads(bus):
    handled: list[str] = []

    async def strategy(cmd, user_id, msg):
        handled.append(type(cmd).__name__)
        return m.Ok(data=[])

    sub = await bus.serve(subjects.cmd_wildcard("strategy"), strategy)
    try:
        reads = m.Reads(commands=[m.encode(m.ListStrategies()), m.encode(m.RemoveStrategy(strategy_id="ema-1")),
                                  b"\x81\xa4type\xa4nope"])
        reply = await bus.request(subjects.cmd("DEMO01", "strategy", "reads"), reads)
        listed, removed, garbage = (m.reply_decoder.decode(raw) for raw in reply.data)
        assert listed == m.Ok(service="test", data=[])
        assert isinstance(removed, m.Error) and removed.code == "bad_request" and "not a read" in removed.message
        assert isinstance(garbage, m.Error) and garbage.code == "bad_request"
        assert handled == ["ListStrategies"]  # the change was never made
    finally:
        await sub.unsubscribe()


async def test_reads_to_a_service_nobody_serves_fail_each_reader_alike(bus):
    from shared.bus import BusError

    results = await asyncio.gather(
        *(bus.read(subjects.cmd("DEMO01", "journal", "get_journal"), m.GetJournal(limit=n), timeout=2.0)
          for n in (1, 2)), return_exceptions=True)
    assert [type(r) for r in results] == [BusError, BusError]
