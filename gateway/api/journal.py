"""Signals, the trade journal (JSON and CSV), risk and execution summaries, kill-switch reset."""

from __future__ import annotations

import csv
import io
from typing import Annotated

import msgspec
from litestar import Controller, Response, get, post
from litestar.params import Parameter
from msgspec import Meta

from gateway.trading import Trading

Day = Annotated[str, Parameter(pattern=r"^(\d{4}-\d{2}-\d{2})?$", description="yyyy-mm-dd; empty = today")]


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """A spreadsheet would run a text cell starting with = + - @ (or tab / CR) as a formula: such text
    gets a leading ``'``. Numbers and empty cells stay as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class ResetRiskBody(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[str, Meta(min_length=1, max_length=200)] = "manual reset"


class JournalController(Controller):
    path = "/api"
    tags = ["journal"]

    @get("/signals")
    async def signals(self, trading: Trading, user_id: str,
                      limit: Annotated[int, Parameter(ge=1, le=1000)] = 100) -> list[dict]:
        return await trading.signals(user_id, limit)

    @get("/journal")
    async def journal(self, trading: Trading, user_id: str, day: Day = "",
                      limit: Annotated[int, Parameter(ge=1, le=5000)] = 500) -> dict:
        return await trading.journal(user_id, day, limit)

    @get("/pnl")
    async def strategy_pnl(self, trading: Trading, user_id: str) -> dict:
        """The day's P&L per strategy from kta's journal (realised FIFO, unrealised at the last price,
        charges by Zerodha's table, net, trades, win rate, open positions) beside the broker's day P&L
        (m2m): ``{"day", "strategies": [..., {"strategy": "total", ...}], "broker_day_pnl"}`` (paise)."""
        return await trading.strategy_pnl(user_id)

    @get("/journal/summary")
    async def journal_summary(self, trading: Trading, user_id: str, day: Day = "") -> dict:
        return await trading.journal_summary(user_id, day)

    @get("/journal/trades.csv", media_type="text/csv")
    async def trades_csv(self, trading: Trading, user_id: str, day: Day = "") -> Response:
        trades = (await trading.journal(user_id, day, 5000)).get("trades", [])
        buf = io.StringIO()
        columns = sorted({k for t in trades for k in t}) if trades else ["trade_id"]
        writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for t in trades:
            writer.writerow({k: csv_cell(v) for k, v in t.items()})
        name = f"kta-trades-{user_id}-{day or 'today'}.csv"
        return Response(buf.getvalue(), media_type="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @get("/risk/summary")
    async def risk_summary(self, trading: Trading, user_id: str) -> dict:
        return await trading.risk_summary(user_id)

    @post("/risk/reset", status_code=200)
    async def reset_risk(self, trading: Trading, user_id: str, data: ResetRiskBody | None = None) -> dict:
        return await trading.reset_risk(user_id, (data or ResetRiskBody()).reason)

    @get("/execution/summary")
    async def execution_summary(self, trading: Trading, user_id: str, day: Day = "") -> dict:
        """The orders' summary of ``day`` (empty: the day the desk reports on, as the session report)."""
        return await trading.execution_summary(user_id, day or await trading.trading_day(user_id))
