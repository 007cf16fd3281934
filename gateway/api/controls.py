"""The operator's controls (JSON): risk limits, Halt now, Square off all, per-strategy positions, and
the trader's own orders (modify, cancel; placing is ``POST /api/orders`` beside the order book). Money in paise, as in every kta message; a refused
request is a 4xx naming the field."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, delete, get, patch, post, put
from litestar.params import Parameter
from msgspec import Meta

from gateway.trading import Trading, TradingError
from shared import validation
from shared import messages as m

Tag = Annotated[str, Parameter(min_length=1, max_length=40, description="kta tag or broker order id")]
Reason = Annotated[str, Meta(min_length=1, max_length=200)]


class LimitsBody(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Any of RiskLimits' fields; the rest keep their current values (paise for money)."""

    max_daily_loss: int | None = None
    warn_daily_loss_pct: float | None = None
    max_position_qty: int | None = None
    max_position_lots: int | None = None
    max_exposure: int | None = None
    max_orders_per_minute: int | None = None
    max_open_orders: int | None = None
    max_exposure_per_symbol: int | None = None
    max_exposure_per_strategy: int | None = None
    max_net_delta: float | None = None
    max_net_vega: float | None = None
    flatten_on_halt: bool | None = None


class ReasonBody(msgspec.Struct, forbid_unknown_fields=True):
    reason: Reason = "from the dashboard"


class OrderBody(m.TraderOrder, forbid_unknown_fields=True):
    """``POST /api/orders``: the fields of ``PlaceOrder`` (shared/messages), a misspelt one refused."""


class ModifyBody(m.OrderChange, forbid_unknown_fields=True):
    """``PATCH /api/orders/{tag}``: the fields of ``ModifyOrder`` but its tag (the path's)."""


async def place_order(trading: Trading, user_id: str, data: OrderBody) -> dict:
    """A trader's order through kta's risk checks and protection (a refusal names the field). An
    instrument the broker does not list is bad input (400 naming ``tradingsymbol``), not a missing route."""
    try:
        return await trading.command(user_id, "execution", m.PlaceOrder(**msgspec.structs.asdict(data)),
                                     timeout=30.0)
    except TradingError as e:
        if e.status == 404:
            raise TradingError(400, e.message, e.field or "tradingsymbol", code="bad_request") from None
        raise


def merged_limits(current: dict, body: LimitsBody) -> m.RiskLimits:
    """The current limits with the body's fields, validated as one RiskLimits (a bad value → 400 naming it)."""
    try:
        return msgspec.convert({**current, **msgspec.to_builtins(body)}, m.RiskLimits)
    except msgspec.ValidationError as e:
        raise TradingError(400, validation.reason(e), validation.path(e) or "body", code="bad_request") from None


class ControlsController(Controller):
    path = "/api"
    tags = ["controls"]

    @get("/risk/limits")
    async def limits(self, trading: Trading, user_id: str) -> dict:
        """The limits in force, whether they are the user's own, and the configured defaults (KTA_RISK)."""
        return await trading.command(user_id, "risk", m.GetRiskLimits())

    @put("/risk/limits")
    async def set_limits(self, trading: Trading, user_id: str, data: LimitsBody) -> dict:
        """Change some limits; effective at once, saved, and journaled as RISK_LIMITS_CHANGED."""
        current = (await trading.command(user_id, "risk", m.GetRiskLimits()))["limits"]
        limits = merged_limits(current, data)
        await trading.command(user_id, "risk", m.SetRiskLimits(limits=limits))
        return {"limits": msgspec.to_builtins(limits), "custom": True}

    @post("/risk/halt", status_code=200)
    async def halt(self, trading: Trading, user_id: str, data: ReasonBody | None = None) -> dict:
        """Halt now: the kill switch HALTED by hand (entries cancelled, stop-losses kept)."""
        return await trading.command(user_id, "risk", m.HaltTrading(reason=(data or ReasonBody()).reason))

    @post("/positions/square-off", status_code=200)
    async def square_off(self, trading: Trading, user_id: str, data: ReasonBody | None = None) -> dict:
        """Square off all: every open order cancelled (stop-losses too), then every position closed."""
        return await trading.command(user_id, "execution", m.SquareOffAll(reason=(data or ReasonBody()).reason),
                                     timeout=30.0)

    @get("/positions/strategies")
    async def strategy_positions(self, trading: Trading, user_id: str,
                                 strategy: Annotated[str, Parameter(max_length=64)] = "") -> dict:
        """Each strategy's positions from the journal's fills: ``{"seq", "positions": [...]}``."""
        return await trading.command(user_id, "execution", m.GetStrategyPositions(strategy_id=strategy))

    @patch("/orders/{tag:str}")
    async def modify(self, trading: Trading, user_id: str, tag: Tag, data: ModifyBody) -> dict:
        return await trading.command(user_id, "execution", m.ModifyOrder(tag=tag, **msgspec.structs.asdict(data)))

    @delete("/orders/{tag:str}", status_code=200)
    async def cancel(self, trading: Trading, user_id: str, tag: Tag) -> dict:
        return await trading.command(user_id, "execution", m.CancelOrder(tag=tag))
