"""Follow your own kta account from a script, a notebook or a monitoring tool.

    kta users nats-creds AB1234              # writes AB1234.creds (read-only, this user only)
    pip install nats-py nkeys msgspec
    python nats_subscriber.py --creds AB1234.creds --user AB1234 [--url nats://127.0.0.1:4222]

It subscribes to the user's ticks, signals, orders, positions, risk, outcomes and alerts and prints
each message as JSON. Payloads are MessagePack; docs/nats-schemas.json is the JSON Schema of each
(e.g. a Tick is an array: [instrument_token, mode, tradable, last_price, ...]). The key may only
subscribe to these subjects of this user: anything else is refused by the server."""

from __future__ import annotations

import argparse
import asyncio
import json

import msgspec
import nats

SUBJECTS = ("ticks.*", "signals", "orders", "positions", "risk", "outcomes", "alerts")


async def follow(url: str, creds: str, user: str, count: int) -> None:
    done = asyncio.Event()
    seen = 0

    async def show(msg) -> None:
        nonlocal seen
        payload = msgspec.msgpack.decode(msg.data)
        print(json.dumps({"subject": msg.subject, "payload": payload}, default=str), flush=True)
        seen += 1
        if count and seen >= count:
            done.set()

    nc = await nats.connect(url, user_credentials=creds, name=f"{user}-subscriber")
    for subject in SUBJECTS:
        await nc.subscribe(f"kta.u.{user}.{subject}", cb=show)
    await nc.flush()
    print(json.dumps({"subscribed": [f"kta.u.{user}.{s}" for s in SUBJECTS]}), flush=True)
    try:
        await done.wait()
    finally:
        await nc.drain()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default="nats://127.0.0.1:4222", help="your kta's NATS address")
    p.add_argument("--creds", required=True, help="the file kta users nats-creds wrote")
    p.add_argument("--user", required=True, help="your Zerodha user id")
    p.add_argument("--count", type=int, default=0, help="stop after this many messages (0 = run until Ctrl-C)")
    a = p.parse_args()
    try:
        asyncio.run(follow(a.url, a.creds, a.user.upper(), a.count))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
