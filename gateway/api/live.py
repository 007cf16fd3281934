"""Start and stop live trading (scatter-gather to the ticker, strategy and execution workers)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from litestar import Controller, Request, post
from msgspec import Meta

from gateway.page_context import went_live
from gateway.services import services_of
from gateway.trading import Trading
from shared.messages import TickMode

Symbol = str | Annotated[int, Meta(ge=0, lt=2**32)]


class StartLiveBody(msgspec.Struct, forbid_unknown_fields=True):
    symbols: Annotated[list[Symbol], Meta(min_length=1, max_length=500)]
    mode: TickMode = TickMode.QUOTE


class StopLiveBody(msgspec.Struct, forbid_unknown_fields=True):
    cancel_open_orders: bool = True  # entries and exits still working (the stop-losses stay)
    positions: Literal["protect", "square_off"] = "protect"  # keep open positions protected, or close them


class LiveController(Controller):
    path = "/api/live"
    tags = ["live"]

    @post("/start", status_code=200)
    async def start(self, request: Request, data: StartLiveBody, trading: Trading, user_id: str) -> dict:
        result = await trading.start_live(user_id, list(data.symbols), data.mode.value)
        await went_live(request, user_id, result["tokens"])
        return result

    @post("/stop", status_code=200)
    async def stop(self, request: Request, trading: Trading, user_id: str, data: StopLiveBody | None = None) -> dict:
        body = data or StopLiveBody()
        result = await trading.stop_live(user_id, body.cancel_open_orders, body.positions)
        streams = services_of(request).streams
        if streams is not None:
            await streams.set_ticks(user_id, [])
        return result
