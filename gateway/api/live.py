"""Start and stop live trading (scatter-gather to the ticker, strategy and execution workers)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Request, post
from msgspec import Meta

from gateway.services import services_of
from gateway.trading import Trading
from shared.messages import TickMode

Symbol = str | Annotated[int, Meta(ge=0, lt=2**32)]


class StartLiveBody(msgspec.Struct, forbid_unknown_fields=True):
    symbols: Annotated[list[Symbol], Meta(min_length=1, max_length=500)]
    mode: TickMode = TickMode.QUOTE


class StopLiveBody(msgspec.Struct, forbid_unknown_fields=True):
    cancel_open_orders: bool = True


class LiveController(Controller):
    path = "/api/live"
    tags = ["live"]

    @post("/start", status_code=200)
    async def start(self, request: Request, data: StartLiveBody, trading: Trading, user_id: str) -> dict:
        result = await trading.start_live(user_id, list(data.symbols), data.mode.value)
        streams = services_of(request).streams
        if streams is not None:
            await streams.set_ticks(user_id, result["tokens"])
        return result

    @post("/stop", status_code=200)
    async def stop(self, request: Request, trading: Trading, user_id: str, data: StopLiveBody | None = None) -> dict:
        result = await trading.stop_live(user_id, (data or StopLiveBody()).cancel_open_orders)
        streams = services_of(request).streams
        if streams is not None:
            await streams.set_ticks(user_id, [])
        return result
