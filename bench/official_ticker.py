"""The pipeline bench's fair baseline: the original design's ticker done plainly — the official client's
parser (``KiteTicker._parse_binary``) on each frame, each tick dict sent as JSON (the original design
broadcasts ``{type: "ticks", data: ...}`` as JSON) with one nats-py ``publish`` per tick.

Run by bench/ticks_pipeline.py as its own process: ``python -m bench.official_ticker NATS_URL CREDS WS_URL
MODE TOKEN,TOKEN,...``; it connects, subscribes and forwards until killed.
"""

from __future__ import annotations

import asyncio
import json
import sys

import websockets
from kiteconnect import KiteTicker

from shared.bus import Bus

SUBJECT = "bench.official.ticks."


async def run(nats_url: str, creds: str, ws_url: str, mode: str, tokens: list[int]) -> None:
    bus = await Bus.connect(nats_url, "bench-official", creds=creds)
    nc = bus.nc
    parse = KiteTicker("key", "token")._parse_binary
    async with websockets.connect(ws_url, additional_headers={"X-Kite-Version": "3"}, max_size=2**22,
                                  ping_interval=None, compression=None) as ws:  # as autobahn: no deflate offer
        await ws.send(json.dumps({"a": "subscribe", "v": tokens}))
        await ws.send(json.dumps({"a": "mode", "v": [mode, tokens]}))
        async for frame in ws:
            if not isinstance(frame, bytes) or len(frame) < 4:
                continue
            for tick in parse(frame):
                await nc.publish(f"{SUBJECT}{tick['instrument_token']}", json.dumps(tick, default=str).encode())


if __name__ == "__main__":
    url, creds, ws_url, mode, tokens = sys.argv[1:6]
    asyncio.run(run(url, creds, ws_url, mode, [int(t) for t in tokens.split(",")]))
