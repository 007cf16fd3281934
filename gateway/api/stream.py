"""Server-sent events of the logged-in user: ``/sse`` carries HTML fragments for the dashboard,
``/api/stream`` the same events as JSON for API clients. Both resume from ``Last-Event-ID``."""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncGenerator, Callable

import msgspec
from litestar import Controller, Request, get
from litestar.response import ServerSentEvent, ServerSentEventMessage

from gateway.guards import user_id_of
from gateway.services import services_of
from gateway.streams import Client, StreamLimit, Streams, UserFeed, parse_last_event_id
from gateway.trading import TradingError

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


@functools.lru_cache(maxsize=256)
def _framed(data: str) -> bytes:
    """An event's ``data:`` lines and its end, framed once per text: a tick update is the same text for
    every dashboard showing it (framing a large message for each client was the gateway's biggest cost)."""
    return "".join(f"data: {line}\r\n" for line in _LINE_BREAK.split(data)).encode() + b"\r\n"


class _Message(ServerSentEventMessage):
    """Litestar's SSE message, the same bytes, with the data framed by ``_framed``."""

    def encode(self) -> bytes:
        return f"id: {self.id}\r\nevent: {self.event}\r\n".encode() + _framed(str(self.data))


def _json(name: str, payload: dict, user_id: str) -> str:
    return msgspec.json.encode(payload).decode()


async def _stream(request: Request, render: Callable[[str, dict, str], str]) -> ServerSentEvent:
    """The user's stream, attached before the response starts (so a refusal is a plain 429 or 503)."""
    streams = services_of(request).streams
    if streams is None:
        raise TradingError(503, "the gateway is not connected to NATS yet; try again in a moment")
    user_id = user_id_of(request)
    last = parse_last_event_id(request.headers.get("last-event-id") or request.query_params.get("last_event_id"))
    try:  # subscribed before the client hears "connected"
        feed, client = await streams.attach(user_id, last, request.scope["auth"].token_hash)
    except StreamLimit as e:
        raise TradingError(429, str(e), code="too_many_streams") from None
    return ServerSentEvent(_messages(streams, feed, client, render, user_id))


async def _messages(streams: Streams, feed: UserFeed, client: Client, render: Callable[[str, dict, str], str],
                    user_id: str) -> AsyncGenerator:
    merge_ticks = render is not _json  # the dashboard merges a message's tick rows; API clients get one each
    try:
        yield ServerSentEventMessage(comment="connected", retry=2000)
        async for batch in streams.events(feed, client):
            if batch is None:
                yield ServerSentEventMessage(comment="ping")
                continue
            for name, ev_id, data in streams.messages(batch, render, user_id, merge_ticks):
                yield _Message(data=data, event=name, id=str(ev_id))
    finally:
        feed.clients.discard(client)


class StreamController(Controller):
    tags = ["stream"]

    @get("/sse")
    async def sse(self, request: Request) -> ServerSentEvent:
        return await _stream(request, services_of(request).html)

    @get("/api/stream")
    async def api_stream(self, request: Request) -> ServerSentEvent:
        return await _stream(request, _json)
