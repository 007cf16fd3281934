"""A session ends everywhere at once: ``kta users remove`` revokes the user's sessions, and an event
stream ends within seconds of its session being revoked or expiring. Streams are capped per session and
per user."""

from __future__ import annotations

import asyncio
import os
from contextlib import AsyncExitStack, aclosing

import pytest

from gateway import users
from tests import simfork
from tests.gateway.conftest import USER_B, login, serve
from tests.gateway.sse import SSE
from tests.helpers import eventually, stack_settings
from tests.simkit import ROOT

pytestmark = pytest.mark.slow(seconds=9)

ENDS_WITHIN = 10.0  # seconds: the gateway checks its streams' sessions every couple of seconds


async def kta(settings, *args: str) -> str:
    """The real ``kta`` command line against the gateway's data dir, as an operator runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KTA_")}
    done = await asyncio.to_thread(simfork.run, "kta", ["--data-dir", settings.data_dir, *args], cwd=ROOT, env=env,
                                   timeout=60)  # forked from the tests' preloaded server (tests/simfork.py)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


async def ended(sse: SSE) -> bool:
    """True once the stream has ended (heartbeats and events before that are skipped)."""
    while await sse.next(ENDS_WITHIN) is not None:
        pass
    return True


async def refusal(client, path: str) -> tuple[int, str]:
    """The status of a stream request, and the body of a refusal (an accepted stream is just closed)."""
    async with client.stream("GET", path) as r:
        return r.status_code, "" if r.status_code == 200 else (await r.aread()).decode()


async def test_users_remove_revokes_the_sessions_and_ends_the_streams(gateway):
    client, _ = await login(gateway, USER_B["zerodha_id"], USER_B["email"])
    other, _ = await login(gateway)
    async with aclosing(client), aclosing(other), SSE(client, "/api/stream") as sse, SSE(other, "/sse") as kept:
        assert "removed" in await kta(gateway.settings, "users", "remove", USER_B["zerodha_id"])
        assert (await client.get("/api/strategies")).status_code == 401  # the session is gone at once
        assert await ended(sse)
        assert (await other.get("/auth/csrf")).status_code == 200  # another user's session is untouched
        assert not kept.task.done()
    assert users.get_user(gateway.settings, USER_B["zerodha_id"]) is None


async def test_an_expired_session_ends_its_stream(gateway):
    client, _ = await login(gateway)
    async with aclosing(client), SSE(client, "/sse") as sse:
        logins = gateway.services.logins
        real = logins.clock
        logins.clock = lambda: real() + gateway.settings.session_days * 86400 + 1  # a week later
        try:
            assert await ended(sse)
            assert (await client.get("/auth/csrf")).status_code == 401
        finally:
            logins.clock = real


async def test_a_session_revoked_elsewhere_ends_its_stream(gateway):
    client, _ = await login(gateway)
    async with aclosing(client), SSE(client, "/api/stream") as sse:
        gateway.services.logins.revoke_user("DEMO01")  # e.g. another gateway instance, or an operator
        assert await ended(sse)


async def test_streams_are_capped_per_session_and_per_user(nats_server, data_dir, gw_sim, gateway_port):
    settings = stack_settings(nats_server, data_dir, gw_sim, gateway_port=gateway_port, env="dev",
                              sse_streams_per_session=2, sse_streams_per_user=3)
    users.ensure_demo_user(settings)
    async with serve(settings) as gw, AsyncExitStack() as es:
        first, _ = await login(gw)
        second, _ = await login(gw)
        for c in (first, second):
            await es.enter_async_context(aclosing(c))
        a1 = await es.enter_async_context(SSE(first, "/sse"))
        await es.enter_async_context(SSE(first, "/api/stream"))
        status, text = await refusal(first, "/api/stream")
        assert status == 429 and "2 event streams per session" in text
        await es.enter_async_context(SSE(second, "/sse"))
        status, text = await refusal(second, "/sse")
        assert status == 429 and "3 event streams per user" in text
        await a1.__aexit__(None, None, None)  # a tab closes: its place is free again
        feed = gw.services.streams.feeds["DEMO01"]
        await eventually(lambda: len(feed.clients) == 2, 10, "the closed stream to be let go")
        async with SSE(second, "/api/stream"):
            pass
