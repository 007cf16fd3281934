"""The ticker WebSocket: Kite's binary tick frames, JSON subscribe / unsubscribe / mode messages,
1-byte heartbeats, order updates as text frames, per-connection token limits."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from kite_sim.failures import Failures
from kite_sim.faults import Faults
from kite_sim.instruments import Instrument
from kite_sim.market import Market
from shared.kite import codec
from shared.messages import OHLC, Depth, Tick

log = logging.getLogger("kite_sim.ticker")

MAX_TOKENS = 3000
MAX_CONNECTIONS = 3


class Connection:
    def __init__(self, user_id: str, api_key: str) -> None:
        self.user_id = user_id
        self.api_key = api_key
        self.modes: dict[int, str] = {}
        self.outbox: asyncio.Queue[bytes | str | None] = asyncio.Queue(maxsize=10_000)

    def send(self, item: bytes | str | None) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self.outbox.put_nowait(item)

    def handle(self, text: str) -> None:
        try:
            msg = json.loads(text)
            action, value = msg["a"], msg["v"]
            if not isinstance(value, list):
                raise TypeError(value)
        except (ValueError, KeyError, TypeError):
            self.send(json.dumps({"type": "error", "data": "Invalid message."}))
            return
        if action == "subscribe":
            tokens = [t for t in value if isinstance(t, int)]
            new = [t for t in tokens if t not in self.modes]
            if len(self.modes) + len(new) > MAX_TOKENS:
                self.send(json.dumps({"type": "error", "data": f"Can't subscribe to more than {MAX_TOKENS} instruments."}))
                new = new[: max(0, MAX_TOKENS - len(self.modes))]
            for t in new:
                self.modes[t] = "quote"
            log.info("ticker: %s subscribed %d tokens (%d in all)", self.user_id, len(new), len(self.modes))
        elif action == "unsubscribe":
            for t in value:
                self.modes.pop(t, None)
            log.info("ticker: %s unsubscribed; %d tokens left", self.user_id, len(self.modes))
        elif action == "mode":
            try:
                mode, tokens = value
            except (TypeError, ValueError):
                self.send(json.dumps({"type": "error", "data": "Invalid mode message."}))
                return
            if mode not in ("ltp", "quote", "full"):
                self.send(json.dumps({"type": "error", "data": f"Invalid mode {mode}."}))
                return
            for t in tokens if isinstance(tokens, list) else []:
                if t in self.modes:
                    self.modes[t] = mode
            log.info("ticker: %s set %d tokens to %s", self.user_id, len(tokens), mode)


class TickerHub:
    """All open ticker connections; builds one frame per connection per broadcast. An instrument whose packet
    cannot be built is left out of the frames (logged once, and again when it recovers): one bad instrument
    never stops the feed of the others."""

    def __init__(self, market: Market, faults: Faults | None = None) -> None:
        self.market = market
        self.faults = faults or Faults()
        self.connections: set[Connection] = set()
        self.failures = Failures(log)  # by token

    def count(self, api_key: str) -> int:
        return sum(1 for c in self.connections if c.api_key == api_key)

    def order_update(self, user_id: str, order: dict) -> None:
        text = json.dumps({"type": "order", "data": order})
        for c in self.connections:
            if c.user_id == user_id:
                c.send(text)

    def tick_for(self, inst: Instrument, mode: str) -> Tick:
        if inst.instrument_token in self.faults.poison_tokens:
            raise ValueError("fault: poisoned instrument")
        q = self.market.quote(inst)
        ts = int(q.timestamp.timestamp())
        if mode == "ltp":
            return Tick(inst.instrument_token, mode, inst.tradable, q.last_price)
        return Tick(
            inst.instrument_token, mode, inst.tradable, q.last_price, q.last_quantity, q.average_price, q.volume,
            q.buy_quantity, q.sell_quantity, OHLC(q.open, q.high, q.low, q.close),
            last_trade_time=ts, oi=q.oi, oi_day_high=q.oi_day_high, oi_day_low=q.oi_day_low, exchange_timestamp=ts,
            depth=Depth([(qq, p, o) for p, qq, o in q.depth_buy], [(qq, p, o) for p, qq, o in q.depth_sell]),
        )

    def broadcast(self, malformed: bool = False) -> None:
        cache: dict[tuple[int, str], bytes] = {}
        for c in self.connections:
            if malformed:
                c.send(b"\x00\x02\x00\x2c" + b"\xff" * 10)
                continue
            packets = []
            for token, mode in c.modes.items():
                key = (token, mode)
                if key not in cache:
                    cache[key] = self._packet(token, mode)
                if cache[key]:
                    packets.append(cache[key])
            c.send(codec.encode_frame(packets) if packets else codec.HEARTBEAT)

    def _packet(self, token: int, mode: str) -> bytes:
        """The packet of ``token`` in ``mode``, or ``b""`` when the instrument is unknown or its packet fails."""
        inst = self.market.universe.by_token.get(token)
        if inst is None:
            return b""
        what = f"ticker: the packet of {inst.tradingsymbol} ({token})"
        try:
            packet = codec.encode_packet(self.tick_for(inst, mode))
        except Exception:  # noqa: BLE001 - one instrument must not stop the feed of the others
            self.failures.failed(token, what)
            return b""
        self.failures.ok(token, what)
        return packet

    def drop_all(self) -> int:
        n = len(self.connections)
        for c in list(self.connections):
            c.send(None)
        return n


async def serve_connection(socket, hub: TickerHub, conn: Connection) -> None:
    """Pump the connection's outbox to the socket and its JSON messages into the subscription."""
    hub.connections.add(conn)

    async def reader() -> None:
        while True:
            text = await socket.receive_text()
            conn.handle(text)

    read_task = asyncio.create_task(reader())
    try:
        while True:
            get = asyncio.create_task(conn.outbox.get())
            done, _ = await asyncio.wait({get, read_task}, return_when=asyncio.FIRST_COMPLETED)
            if read_task in done:
                get.cancel()
                break
            item = get.result()
            if item is None:
                await socket.close(code=1001, reason="dropped by sim")
                break
            if isinstance(item, str):
                await socket.send_text(item)
            else:
                await socket.send_bytes(item)
    except Exception as e:  # noqa: BLE001 - a client that goes away is normal
        log.debug("ticker connection closed: %r", e)
    finally:
        hub.connections.discard(conn)
        read_task.cancel()
        with contextlib.suppress(BaseException):
            await read_task

