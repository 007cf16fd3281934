"""The live keys of a KV bucket, read from the stream's own subject index.

nats-py's ``KeyValue.keys()`` lists keys through a watcher that decides "nothing (more) to deliver" from the
consumer's info (no message pending, none received yet) or a message's pending count. Both can be stale on a
busy server (nats-io/nats.py#842; #995 describes the partial lists under concurrent writes), so ``keys()``
raised ``NoKeysError`` on a full bucket: a restarted worker took back none of its leases (a CI run on a
loaded machine), and a restarted ticker would have restored no user's subscriptions. The stream's info names
every subject that holds a message, answered in one reply, so nothing can overtake it; a key whose last
message is a delete or purge marker is dropped by reading it."""

from __future__ import annotations

import asyncio

from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue


async def live_entries(kv: KeyValue, under: str = "") -> dict[str, KeyValue.Entry]:
    """Key → entry of every key that holds a value (deleted and purged ones left out); ``under``: only the keys
    below that dotted prefix (``"exec"``: ``exec.p3``, ``exec.m.a``)."""
    pre = kv._pre  # "$KV.<bucket>."
    info = await kv._js.stream_info(kv._stream, subjects_filter=f"{pre}{under}.>" if under else f"{pre}>")
    keys = sorted(subject[len(pre):] for subject in (info.state.subjects or {}))
    entries = await asyncio.gather(*(_entry(kv, key) for key in keys))
    return {key: entry for key, entry in zip(keys, entries) if entry is not None}


async def live_keys(kv: KeyValue, under: str = "") -> list[str]:
    return list(await live_entries(kv, under))


async def _entry(kv: KeyValue, key: str) -> KeyValue.Entry | None:
    try:
        return await kv.get(key)
    except KeyNotFoundError:  # deleted or purged (KeyDeletedError is its kind), or aged out since the info
        return None
