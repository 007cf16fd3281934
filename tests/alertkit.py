"""Real receivers for the notifier's deliveries: a local SMTP server (aiosmtpd) and a local HTTP
webhook (Litestar under uvicorn), both on loopback, each collecting what arrives in a queue."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message

import uvicorn
from aiosmtpd.controller import Controller
from litestar import Litestar, Request, post

from shared import natsd
from tests.helpers import eventually


class Inbox:
    """aiosmtpd handler: every message as (recipients, raw bytes) on ``messages``."""

    def __init__(self) -> None:
        self.messages: asyncio.Queue = asyncio.Queue()
        self.loop = asyncio.get_running_loop()

    async def handle_DATA(self, server, session, envelope):
        self.loop.call_soon_threadsafe(self.messages.put_nowait, (envelope.rcpt_tos, envelope.content))
        return "250 OK"

    async def next_mail(self, timeout: float = 15.0) -> tuple[list[str], Message]:
        rcpts, raw = await asyncio.wait_for(self.messages.get(), timeout)
        return rcpts, message_from_bytes(raw)


@contextlib.contextmanager
def smtp_server():
    """(inbox, port) of a local SMTP server for the block's duration."""
    inbox = Inbox()
    port = natsd.free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def text_of(mail: Message) -> str:
    """The plain-text part of an email."""
    for part in mail.walk():
        if part.get_content_type() == "text/plain":
            return part.get_payload(decode=True).decode()
    return ""


def html_of(mail: Message) -> str:
    for part in mail.walk():
        if part.get_content_type() == "text/html":
            return part.get_payload(decode=True).decode()
    return ""


@dataclass
class Webhook:
    url: str  # http://127.0.0.1:<port>
    received: asyncio.Queue = field(default_factory=asyncio.Queue)

    async def next_post(self, timeout: float = 15.0) -> tuple[str, dict]:
        return await asyncio.wait_for(self.received.get(), timeout)


@contextlib.asynccontextmanager
async def webhook_server():
    """A local webhook: every POST's (path, JSON body) on ``received``."""
    queue: asyncio.Queue = asyncio.Queue()

    @post("/{path:path}", status_code=200)
    async def receive(request: Request, path: str) -> dict:
        queue.put_nowait((path, json.loads(await request.body() or b"{}")))
        return {"ok": True}

    port = natsd.free_port()
    server = uvicorn.Server(uvicorn.Config(Litestar([receive]), host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: server.started or task.done(), 15, "webhook receiver start")
        yield Webhook(f"127.0.0.1:{port}", queue)
    finally:
        server.should_exit = True
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(task, 5)
