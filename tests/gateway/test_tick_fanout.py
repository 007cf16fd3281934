"""Ticks fan out from ONE NATS subscription per token to every user's streams, and each tick update is
rendered once per format (dashboard HTML, API JSON) however many clients show it; a user sees only
the instruments they are live on; the subscription goes when the last user stops showing the token."""

from __future__ import annotations

import json
import re
import time
from contextlib import AsyncExitStack

import pytest

from gateway import users
from shared import messages as m
from shared import subjects
from shared.kite.models import Instrument
from tests.gateway.conftest import login, serve
from tests.gateway.sse import SSE

pytestmark = pytest.mark.slow(seconds=15)

TOKENS = [408065, 738561, 2953217]
USERS = [f"FAN{i:02d}" for i in range(4)]


def tick_subjects(gw) -> list[str]:
    """The gateway's own NATS subscriptions to tick subjects."""
    return sorted(s.subject for s in gw.services.bus.nc._subs.values() if s.subject.startswith("kta.ticks."))


def tokens_in(path: str, data: str) -> set[int]:
    if path == "/api/stream":
        return {json.loads(data)["instrument_token"]}
    return {int(t) for t in re.findall(r'data-token="(\d+)"', data)}


async def test_one_subscription_per_token_and_one_rendering_per_update_for_all_clients(gw_settings, bus):
    for uid in USERS:
        users.add_user(gw_settings, zerodha_id=uid, email=f"{uid.lower()}@kta.local", api_key="k", api_secret="s")
    async with serve(gw_settings) as gw, AsyncExitStack() as stack:
        live = gw.services.trading.live_tokens
        gw.services.trading.instruments.load([Instrument(  # the dashboard names a tick row from the gateway's list
            instrument_token=TOKENS[0], exchange_token=1594, tradingsymbol="INFY", name="INFOSYS", last_price=0,
            expiry=None, strike=0, tick_size=0.05, lot_size=1, instrument_type="EQ", segment="NSE", exchange="NSE")])
        for uid in USERS:
            live[uid] = TOKENS
        live[USERS[-1]] = TOKENS[:1]  # one trader watches a single instrument
        readers = []
        for uid in USERS:
            client, _ = await login(gw, uid, f"{uid.lower()}@kta.local")
            stack.push_async_callback(client.aclose)
            for path in ("/sse", "/api/stream", "/sse"):  # two dashboard tabs and an API client each
                readers.append((uid, path, await stack.enter_async_context(SSE(client, path))))
        streams = gw.services.streams
        assert tick_subjects(gw) == sorted(subjects.ticks(t) for t in TOKENS)  # 4 users, 12 streams: 3 subscriptions

        renders = streams.renders
        for i, token in enumerate(TOKENS):
            await bus.publish(subjects.ticks(token), m.Tick(token, "full", True, 100.0 + i, volume_traded=i + 1,
                                                            received_at=time.time_ns()))
        for uid, path, sse in readers:
            want, seen = set(live[uid]), set()
            while seen != want:
                _, name, data = await sse.next_event(10)
                assert name == "ticks"
                got = tokens_in(path, data)
                assert got <= want, f"{uid} got another user's instruments {got - want}"
                if path == "/sse":  # a row is named from the gateway's list; an unlisted token shows its number
                    for token, label in re.findall(r'data-token="(\d+)" data-label="([^"]*)"', data):
                        assert label == ("INFY" if int(token) == TOKENS[0] else token)
                seen |= got
        assert streams.renders - renders == len(TOKENS) * 2  # once per update and format, not per client (12)

        for uid in USERS[:-1]:  # everyone but the single-instrument trader stops
            await streams.set_ticks(uid, [])
        assert tick_subjects(gw) == [subjects.ticks(TOKENS[0])]
        await streams.set_ticks(USERS[-1], [])
        assert tick_subjects(gw) == []
