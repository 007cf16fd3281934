"""What a dashboard's stream carries: the ``Event`` (rendered once per format, whatever the number of
clients) and each connected ``Client``'s bounded buffer of them (``gateway.streams`` keeps the feeds)."""

from __future__ import annotations

import asyncio
import operator
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

CLIENT_BUFFER = 256
_BY_ID = operator.attrgetter("id")


@dataclass(slots=True, eq=False)
class Event:  # not frozen: a frozen dataclass's __init__ costs ~1 µs, and a flush makes one per feed
    id: int
    name: str
    key: Any
    payload: dict
    cache: dict = field(default_factory=dict)  # render function -> text; shared by every feed it goes to
    rows: tuple[Event, ...] = ()  # a flush's ticks: one row (payload + cache) per instrument


@dataclass(eq=False)
class Client:
    session: str = ""  # the login session's token hash
    buffer: OrderedDict = field(default_factory=OrderedDict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False
    started: bool = False
    opened_at: float = field(default_factory=time.monotonic)
    dropped: int = 0

    def push(self, ev: Event) -> None:
        old = self.buffer.pop(ev.key, None)  # coalesce: the newest state of the same thing wins
        if old is not None and old.rows:  # a client behind by a flush: keep its other instruments' rows
            newer = {row.key for row in ev.rows}
            ev = Event(ev.id, ev.name, ev.key, ev.payload, {}, tuple(r for r in old.rows if r.key not in newer) + ev.rows)
        self.buffer[ev.key] = ev
        while len(self.buffer) > CLIENT_BUFFER:
            self.buffer.popitem(last=False)
            self.dropped += 1
        self.wake.set()

    def drain(self) -> list[Event]:
        out = sorted(self.buffer.values(), key=_BY_ID)
        self.buffer.clear()
        return out

    def close(self) -> None:
        self.closed = True
        self.wake.set()
