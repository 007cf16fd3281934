"""What each user wants from the feed — instrument token → tick mode — and the instruments the trader
started live on (the picks; the feed also carries what strategies subscribed, e.g. an option chain),
kept in the KV bucket ``kta_ticker`` so that a ticker worker restarted after a crash subscribes every
live user again by itself and the desk still shows the trader's own symbols (the strategy worker
restores its users from its store the same way)."""

from __future__ import annotations

import logging

import msgspec
import nats

from shared import natsperms
from shared.kv_keys import live_entries

log = logging.getLogger("kta.ticker_worker")


class Saved(msgspec.Struct, kw_only=True):
    wanted: dict[int, str]  # token -> tick mode
    picked: list[int] = []  # the tokens of the trader's Start


_decoder = msgspec.msgpack.Decoder(Saved)
_before_picks = msgspec.msgpack.Decoder(dict[int, str])  # an entry written before the picks were kept


def decode(value: bytes) -> Saved:
    try:
        return _decoder.decode(value)
    except msgspec.ValidationError:
        return Saved(wanted=_before_picks.decode(value))


class WantedStore:
    def __init__(self, bus) -> None:
        self.bus = bus
        self._kv = None

    async def _bucket(self):
        if self._kv is None:
            self._kv = await self.bus.kv(natsperms.KV_TICKER)
        return self._kv

    async def load(self) -> dict[str, Saved]:
        kv = await self._bucket()
        out: dict[str, Saved] = {}
        for user_id, entry in (await live_entries(kv)).items():
            try:
                out[user_id] = decode(entry.value)
            except Exception as e:  # noqa: BLE001 - a bad or vanished entry: that user starts empty
                log.error("cannot restore the subscriptions of %s: %r", user_id, e)
        return out

    async def save(self, user_id: str, wanted: dict[int, str], picked: list[int]) -> None:
        kv = await self._bucket()
        if wanted:
            await kv.put(user_id, msgspec.msgpack.encode(Saved(wanted=wanted, picked=picked)))
        else:
            try:
                await kv.delete(user_id)
            except nats.js.errors.KeyNotFoundError:
                pass
