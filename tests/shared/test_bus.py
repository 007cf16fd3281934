"""The bus over core NATS against a real nats-server: typed publish/subscribe, ``sync``, request/reply,
gather, and a malformed message dead-lettered while the worker goes on. JetStream: test_bus_jetstream.py."""

import asyncio

import httpx
import msgspec

from shared import messages as m
from shared import subjects as s
from shared.bus import Bus
from tests.helpers import LosesFirstCancel, connect, ends_within


async def test_publish_subscribe_typed(bus):
    got = asyncio.Queue()

    async def handler(tick, msg):
        await got.put(tick)

    await bus.subscribe(s.ticks(1), m.Tick, handler)
    t = m.Tick(instrument_token=1, mode="ltp", tradable=True, last_price=10.5)
    await bus.publish(s.ticks(1), t)
    assert await asyncio.wait_for(got.get(), 5) == t


async def test_sync_answers_only_after_the_server_read_a_subscription_made_just_before(nats_server, nats_auth):
    """What the server read from the client, recorded by a loopback relay in front of the real nats-server:
    the PING whose PONG ends ``Bus.sync`` follows the SUB. (nats-py 2.16's own flush read
    ``PING\r\nSUB kta.test.sync.sync  2\r\n`` here: its PONG can come back before the server has the SUB.)"""
    upstream = httpx.URL(nats_server.replace("nats://", "http://"))
    read: bytearray = bytearray()

    async def relay(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(upstream.host, upstream.port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, record: bool) -> None:
            while data := await src.read(65536):
                if record:
                    read.extend(data)
                dst.write(data)
                await dst.drain()
            dst.close()
        await asyncio.gather(pipe(client_r, server_w, True), pipe(server_r, client_w, False), return_exceptions=True)

    async def ignore(msg) -> None:
        pass

    server = await asyncio.start_server(relay, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    b = await Bus.connect(f"nats://127.0.0.1:{port}", "synctest", creds=str(nats_auth.creds_path("admin")))
    try:
        start = len(read)
        await b.nc.subscribe("kta.test.sync.sync", cb=ignore)
        await b.sync()
        seen = bytes(read[start:])  # the server answered the last PING it read: everything before it is read
        assert -1 < seen.index(b"SUB kta.test.sync.sync") < seen.rindex(b"PING")
    finally:
        await b.close()
        server.close()


async def test_publish_many_delivers_every_message_in_order_on_its_subject(bus):
    """One write carrying many PUBs (the ticker's batch): all arrive, in order, each on its subject,
    payloads byte for byte (empty and binary ones too); an empty batch is a no-op."""
    got: list[tuple[str, bytes]] = []
    done = asyncio.Event()
    n = 2_000

    async def on_msg(msg) -> None:
        got.append((msg.subject, msg.data))
        if len(got) == n:
            done.set()

    await bus.nc.subscribe("kta.test.many.>", cb=on_msg)
    await bus.nc.flush()
    sent = [(f"kta.test.many.{i % 7}".encode(), bytes([i % 256]) * (i % 300) + b"\r\nPUB x 1\r\n")
            for i in range(n)]
    await bus.publish_many([])
    await bus.publish_many(sent[:1000])
    await bus.publish_many(sent[1000:])
    await asyncio.wait_for(done.wait(), 10)
    assert got == [(s_.decode(), p) for s_, p in sent]


async def test_publish_many_is_written_before_it_returns(bus):
    """A frame's ticks go to the socket in the call, not on nats-py's flusher task's next turn behind whatever
    else the loop has ready (issue #18): nothing is left pending for the flusher, and they arrive."""
    got = asyncio.Queue()

    async def on_msg(msg) -> None:
        await got.put(msg.data)

    await bus.nc.subscribe("kta.test.now", cb=on_msg)
    await bus.sync()
    await bus.publish_many([(b"kta.test.now", b"first"), (b"kta.test.now", b"second")])
    assert bus.nc._pending == [] and bus.nc._pending_data_size == 0
    assert [await asyncio.wait_for(got.get(), 5) for _ in range(2)] == [b"first", b"second"]


async def test_malformed_payload_is_dead_lettered_and_worker_goes_on(nats_server):
    bus = await connect(nats_server, "dlqtest1")
    try:
        await bus.ensure_streams()
        got = asyncio.Queue()

        async def handler(tick, msg):
            if tick.last_price < 0:
                raise ValueError("negative price")
            await got.put(tick)

        dlq = await bus.js.subscribe(s.dlq("dlqtest1"))
        await bus.subscribe(s.ticks(7), m.Tick, handler)
        await bus.publish_raw(s.ticks(7), b"\xc1 not msgpack")
        await bus.publish(s.ticks(7), m.Tick(instrument_token=7, mode="ltp", tradable=True, last_price=-1))
        await bus.publish(s.ticks(7), m.Tick(instrument_token=7, mode="ltp", tradable=True, last_price=1))
        assert (await asyncio.wait_for(got.get(), 5)).last_price == 1  # still running
        first = await dlq.next_msg(timeout=5)
        second = await dlq.next_msg(timeout=5)
        assert first.data == b"\xc1 not msgpack"
        assert first.headers["Kta-Subject"] == s.ticks(7) and first.headers["Kta-Error"].startswith("decode")
        assert second.headers["Kta-Error"].startswith("handler") and "negative price" in second.headers["Kta-Error"]
    finally:
        await bus.close()  # its subscriptions go with it


async def test_request_reply_and_bad_command(bus):
    async def handler(cmd, user_id, msg):
        if isinstance(cmd, m.AddStrategy):
            return m.Ok(data={"user": user_id, "strategy": cmd.strategy})
        return m.Error(code="unsupported", message="no")

    await bus.serve(s.cmd_wildcard("strategy"), handler)
    reply = await bus.request(s.cmd("DEMO01", "strategy", "add"), m.AddStrategy(strategy="rsi"))
    assert reply == m.Ok(service="test", data={"user": "DEMO01", "strategy": "rsi"})
    raw = await bus.nc.request(s.cmd("DEMO01", "strategy", "add"),
                               msgspec.msgpack.encode({"type": "add_strategy", "strategy": 5}), timeout=5)
    err = m.reply_decoder.decode(raw.data)
    assert isinstance(err, m.Error) and err.code == "bad_request" and err.field == "strategy"


async def test_one_users_slow_command_holds_up_no_other_user_and_each_users_stay_in_order(bus):
    started, release = asyncio.Event(), asyncio.Event()
    seen: list[tuple[str, str]] = []

    async def handler(cmd, user_id, msg):
        seen.append((user_id, cmd.strategy))
        if cmd.strategy == "slow":
            started.set()
            await release.wait()
        return m.Ok(data={"strategy": cmd.strategy})

    await bus.serve(s.cmd_wildcard("strategy"), handler)
    slow = asyncio.ensure_future(bus.request(s.cmd("DEMO01", "strategy", "add"), m.AddStrategy(strategy="slow")))
    await started.wait()
    queued = asyncio.ensure_future(bus.request(s.cmd("DEMO01", "strategy", "add"), m.AddStrategy(strategy="next")))
    other = await bus.request(s.cmd("DEMO02", "strategy", "add"), m.AddStrategy(strategy="rsi"), timeout=5)
    assert other.data == {"strategy": "rsi"}  # answered while DEMO01's first command still runs
    assert ("DEMO01", "next") not in seen and not queued.done()  # DEMO01's second waits for its first
    release.set()
    assert [(await slow).data, (await queued).data] == [{"strategy": "slow"}, {"strategy": "next"}]
    assert [x for x in seen if x[0] == "DEMO01"] == [("DEMO01", "slow"), ("DEMO01", "next")]


async def test_gather_collects_one_reply_per_service(nats_server):
    buses = [await connect(nats_server, name) for name in ("ticker", "strategy", "execution")]

    def make(name):
        async def handler(cmd, user_id, msg):
            return m.Ok(data=name)
        return handler

    for b in buses:
        await b.serve(s.cmd("DEMO01", "live", "start"), make(b.service))
    client = await connect(nats_server, "gateway")
    replies = await client.gather(s.cmd("DEMO01", "live", "start"), m.StartLive(tokens=[1]),
                                  expect={"ticker", "strategy", "execution"}, timeout=5)
    assert {k: v.data for k, v in replies.items()} == {"ticker": "ticker", "strategy": "strategy",
                                                       "execution": "execution"}
    for b in (*buses, client):
        await b.close()


async def test_close_ends_a_task_that_lost_its_first_cancel(nats_server):
    """Python 3.11's wait_for can lose a cancel racing its inner result (nats-py's KV watcher set-up waits so):
    the task goes on to its next wait. Bus.close cancels again, so a worker stopped just after start-up ends
    (a `kta worker ticker` SIGTERMed 35 ms after ready lived on, answering other tests' status requests)."""
    bus = await connect(nats_server, "closetest")
    lost = LosesFirstCancel()  # as nats-py's KV watcher set-up waits: the watcher's next get() ends it
    task = bus.spawn(lost(), name="watcher")
    await lost.waiting.wait()
    assert await ends_within(bus.close()), "close() still waiting for a task that lost its first cancel"
    assert lost.went_on.is_set() and task.cancelled()
