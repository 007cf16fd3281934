"""The floor's processes (bench/tick_to_order_floor.py): kta's path from tick to order with each hop doing only
what it must. ``python -m bench.floor_procs <role> <args>``; every NATS connection authenticates as kta runs it.

* ``sender``: the sim's part — a WebSocket server sending one frame of 6 full-mode ticks every ``interval`` s,
  the exchange clock stepping so that a minute bar closes every ``frames`` frames;
* ``ticker``: the frame decoded with kta's decoder, each tick published as a msgspec message on core NATS;
* ``strategy``: a bar per token; on a bar's close 4 signals for its symbol, spread over 8 users, stored in
  JetStream (a message id, the ack read when it comes) or, ``core``, on core NATS;
* ``execution``: a durable pull consumer's signals (one standing pull request), each: its signal and order rows
  committed in SQLite (WAL), the POST written on the user's keep-alive HTTP/1.1 connection, the message acked;
* ``http``: the broker's part, a keep-alive HTTP/1.1 server answering every POST with a small JSON body.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import time

import msgspec
import nats

from shared.kite.codec import decode_frame, encode_frame, encode_packet
from shared.messages import OHLC, Depth, Tick, TickMode

TOKENS = [256265, 738561, 2953217, 341249, 408065, 895745]  # 6 instruments (NIFTY's and 5 stocks' tokens)
USERS = [f"FL{n:02d}" for n in range(8)]
STREAM = "FLOOR"
SIGNALS_PER_SYMBOL = 4


class Signal(msgspec.Struct, array_like=True, gc=False):
    id: str
    user_id: str
    token: int
    bar: int
    side: str
    price: float
    tick_received_at: int
    created_at: int


class Stamp(msgspec.Struct, array_like=True, gc=False):
    """An order's stamps (epoch ns): the tick, the signal created, stored (0 on core NATS), the handler, handed."""
    bar: int
    tick: int
    created: int
    stored: int
    arrived: int
    handed: int


def half(user: str) -> str:
    return "a" if int(user[2:]) < len(USERS) // 2 else "b"


async def connect(url: str, creds: str, name: str):
    return await nats.connect(url, user_credentials=creds, name=name, max_reconnect_attempts=0)


async def sender(port: int, interval: float, frames: int) -> None:
    import websockets
    depth = Depth(buy=[(10, 100.0, 1)] * 5, sell=[(10, 100.1, 1)] * 5)

    async def feed(ws) -> None:
        n = 0
        next_at = time.monotonic()
        while True:
            ts = 1_700_000_040 + (n // frames) * 60 + (n % frames) * (60 // frames)
            price = 100.0 + (n % 17) * 0.05
            await ws.send(encode_frame([encode_packet(Tick(t, TickMode.FULL.value, True, price, 1, price, n, 5, 5,
                                                           OHLC(100.0, 101.0, 99.0, 100.0), 0.0, ts, 0, 0, 0, ts,
                                                           depth)) for t in TOKENS]))
            n += 1
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async with websockets.serve(feed, "127.0.0.1", port, compression=None):
        await asyncio.Future()


async def ticker(url: str, creds: str, ws_url: str) -> None:
    import websockets
    nc = await connect(url, creds, "floor-ticker")
    enc = msgspec.msgpack.Encoder()
    async with websockets.connect(ws_url, compression=None, max_size=None) as ws:
        async for data in ws:
            for tick in decode_frame(data, time.time_ns()):
                await nc.publish(f"floor.ticks.{tick.instrument_token}", enc.encode(tick))


async def strategy(url: str, creds: str, core: bool) -> None:
    nc = await connect(url, creds, "floor-strategy")
    enc, dec = msgspec.msgpack.Encoder(), msgspec.msgpack.Decoder(Tick)
    bars: dict[int, list] = {}  # token -> [bar, open, high, low, close]
    acks = {"ok": 0, "bad": 0}
    slot = {t: i for i, t in enumerate(TOKENS)}

    async def on_ack(msg) -> None:
        acks["ok" if b'"error"' not in msg.data else "bad"] += 1

    inbox = nc.new_inbox()
    await nc.subscribe(inbox + ".*", cb=on_ack)

    async def on_tick(msg) -> None:
        tick = dec.decode(msg.data)
        bar, price = tick.exchange_timestamp // 60, tick.last_price
        b = bars.get(tick.instrument_token)
        if b is None or b[0] != bar:
            bars[tick.instrument_token] = [bar, price, price, price, price]
            if b is None:
                return
            for k in range(SIGNALS_PER_SYMBOL):
                user = USERS[(slot[tick.instrument_token] * SIGNALS_PER_SYMBOL + k) % len(USERS)]
                sid = f"{tick.instrument_token}-{b[0]}-{k}"
                sig = Signal(sid, user, tick.instrument_token, b[0], "BUY" if k % 2 else "SELL", b[4],
                             tick.received_at, time.time_ns())
                if core:
                    await nc.publish(f"floor.core.{half(user)}.{user}", enc.encode(sig))
                else:
                    await nc.publish(f"floor.sig.{half(user)}.{user}", enc.encode(sig), reply=f"{inbox}.{sid}",
                                     headers={"Nats-Msg-Id": sid})
            return
        b[2], b[3], b[4] = max(b[2], price), min(b[3], price), price

    await nc.subscribe("floor.ticks.>", cb=on_tick)
    async def report(msg) -> None:
        await msg.respond(json.dumps(acks).encode())

    await nc.subscribe("floor.acks", cb=report)
    await asyncio.Future()


class Journal:
    """A signal's row and its order's row in one commit, WAL, synchronous=NORMAL (as kta's journal)."""

    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS signals (id TEXT PRIMARY KEY, user_id TEXT, token INTEGER, "
                        "side TEXT, price REAL, created_at INTEGER)")
        self.db.execute("CREATE TABLE IF NOT EXISTS orders (tag TEXT PRIMARY KEY, signal_id TEXT, user_id TEXT, "
                        "token INTEGER, side TEXT, quantity INTEGER, status TEXT)")

    def write(self, sig: Signal, tag: str) -> None:
        db = self.db
        db.execute("BEGIN")
        db.execute("INSERT INTO signals VALUES (?,?,?,?,?,?)",
                   (sig.id, sig.user_id, sig.token, sig.side, sig.price, sig.created_at))
        db.execute("INSERT INTO orders VALUES (?,?,?,?,?,?,?)",
                   (tag, sig.id, sig.user_id, sig.token, sig.side, 1, "PENDING"))
        db.execute("COMMIT")


class Connection:
    """One user's keep-alive HTTP/1.1 connection to the broker; answers read by a task of its own."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self.writer, self.host, self.answers = writer, host, 0
        self.task = asyncio.ensure_future(self._read(reader))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
            await reader.readexactly(length)
            self.answers += 1

    def request(self, sig: Signal, tag: str) -> bytes:
        body = (f"tradingsymbol={sig.token}&exchange=NSE&transaction_type={sig.side}&order_type=MARKET"
                f"&quantity=1&product=MIS&validity=DAY&tag={tag}").encode()
        return (f"POST /orders/regular HTTP/1.1\r\nHost: {self.host}\r\nX-Kite-Version: 3\r\n"
                f"Authorization: token {sig.user_id}:t\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def execution(url: str, creds: str, name: str, which: str, db: str, http_port: int, core: bool) -> None:
    nc = await connect(url, creds, f"floor-{name}")
    journal, dec, stamps = Journal(db), msgspec.msgpack.Decoder(Signal), []
    conns = {}
    for user in USERS:
        if which in ("all", half(user)):
            r, w = await asyncio.open_connection("127.0.0.1", http_port)
            conns[user] = Connection(r, w, f"127.0.0.1:{http_port}")

    async def handle(msg) -> None:
        arrived = time.time_ns()
        if core:
            stored = 0
        else:
            if not msg.reply:  # a status of the pull request (408: expired), not a signal
                return await pull(msg)
            state["outstanding"] -= 1
            stored = int(msg.reply.split(".")[-2])  # $JS.ACK.<stream>.<consumer>.<n>.<sseq>.<cseq>.<ts>.<pending>
        sig = dec.decode(msg.data)
        tag = sig.id.replace("-", "")[-20:]
        journal.write(sig, tag)
        conn = conns[sig.user_id]
        data = conn.request(sig, tag)
        handed = time.time_ns()
        conn.writer.write(data)
        stamps.append(Stamp(sig.bar, sig.tick_received_at, sig.created_at, stored, arrived, handed))
        if not core:
            await nc.publish(msg.reply, b"")  # the ack, not awaited (kta acks when the signal's work is done)
            if state["outstanding"] < BATCH // 2:
                await pull(None)

    state = {"outstanding": 0}
    BATCH = 256
    inbox = nc.new_inbox()

    async def pull(status) -> None:
        if status is not None:
            pending = (status.headers or {}).get("Nats-Pending-Messages")
            state["outstanding"] = max(0, state["outstanding"] - int(pending)) if pending else 0
        if state["outstanding"] < BATCH // 2:
            await nc.publish(f"$JS.API.CONSUMER.MSG.NEXT.{STREAM}.{name}", json.dumps(
                {"batch": BATCH, "expires": 20_000_000_000}).encode(), reply=inbox)
            state["outstanding"] += BATCH

    if core:
        await nc.subscribe(f"floor.core.{'*' if which == 'all' else which}.*", cb=handle)
    else:
        await nc.subscribe(inbox, cb=handle)
        await pull(None)
    enc = msgspec.msgpack.Encoder()

    async def report(msg) -> None:
        await msg.respond(enc.encode([len(stamps), sum(c.answers for c in conns.values())] if msg.data == b"count"
                                     else stamps))

    await nc.subscribe(f"floor.report.{name}", cb=report)
    await asyncio.Future()


async def http(port: int) -> None:
    answer = b'{"status":"success","data":{"order_id":"151220000000000"}}'
    response = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
        len(answer), answer)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
                await reader.readexactly(length)
                writer.write(response)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main(argv: list[str]) -> None:
    role, args = argv[0], argv[1:]
    if role == "sender":
        coro = sender(int(args[0]), float(args[1]), int(args[2]))
    elif role == "ticker":
        coro = ticker(*args)
    elif role == "strategy":
        coro = strategy(args[0], args[1], args[2] == "core")
    elif role == "execution":
        coro = execution(*args[:5], int(args[5]), args[6] == "core")
    else:
        coro = http(int(args[0]))
    asyncio.run(coro)


if __name__ == "__main__":
    main(sys.argv[1:])
