"""The backtests page (``/backtests``): run a strategy on history from its params form, watch it go, read
its equity, drawdown, trades on the price chart and metrics, and compare two runs side by side. The page is
static HTML; ``web/static/backtests.js`` drives it over the JSON API (``gateway/api/backtests.py``) and the
``backtest`` events of ``/api/stream``."""

from __future__ import annotations

from litestar import Controller, Request, get
from litestar.response import Template

from gateway.page_context import page


class BacktestPagesController(Controller):
    include_in_schema = False

    @get("/backtests")
    async def backtests(self, request: Request) -> Template:
        return page("backtests.html", request)
