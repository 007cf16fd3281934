"""Backtests over the JSON API; the strategy worker runs them (``kta.u.<user>.cmd.backtest.*``).

- ``POST /api/backtests`` a ``BacktestSpec`` (strategy, params, symbols, start, end, interval, capital in
  paise, slippage_ticks, warmup_bars, risk, name) → ``{"backtest_id"}``; progress arrives on the SSE
  streams as ``backtest`` events (``BacktestProgress``)
- ``POST /api/backtests/sweeps`` a ``SweepSpec`` (base, grid, method, trials, objective, in_sample, windows)
- ``GET /api/backtests`` the user's runs, newest first; ``GET /api/backtests/{id}`` one run with its metrics,
  per-symbol figures and results (``?chart=1`` adds the price bars); ``POST /api/backtests/{id}/cancel``
- ``GET /api/backtests/{id}/export?what=trades&format=csv`` one part as a CSV or JSON file
A bad field → 400 naming it (a symbol the broker does not list, a range without candles, a bad param, an
interval Kite does not offer); another user's run → 404."""

from __future__ import annotations

from typing import Annotated, Literal

from litestar import Controller, Request, Response, get, post
from litestar.params import Parameter

from gateway.bodies import read_body
from gateway.trading import Trading
from shared import messages as m

RUN_TIMEOUT = 120.0  # the worker first fetches what the store lacks, at Kite's 3 historical calls a second
RunId = Annotated[str, Parameter(pattern=r"^[a-f0-9]{12}$", description="backtest id")]


class BacktestsController(Controller):
    path = "/api/backtests"
    tags = ["backtests"]

    @post("/", status_code=202)
    async def run(self, request: Request, trading: Trading, user_id: str) -> dict:
        spec = await read_body(request, m.BacktestSpec)
        return await trading.command(user_id, "backtest", m.RunBacktest(spec=spec), timeout=RUN_TIMEOUT)

    @post("/sweeps", status_code=202)
    async def sweep(self, request: Request, trading: Trading, user_id: str) -> dict:
        spec = await read_body(request, m.SweepSpec)
        return await trading.command(user_id, "backtest", m.RunSweep(spec=spec), timeout=RUN_TIMEOUT)

    @get("/")
    async def list_runs(self, trading: Trading, user_id: str,
                        limit: Annotated[int, Parameter(ge=1, le=500)] = 50) -> list[dict]:
        return await trading.command(user_id, "backtest", m.ListBacktests(limit=limit))

    @get("/{run_id:str}")
    async def one(self, trading: Trading, user_id: str, run_id: RunId, chart: bool = False) -> dict:
        return await trading.command(user_id, "backtest", m.GetBacktest(id=run_id, chart=chart))

    @post("/{run_id:str}/cancel", status_code=200)
    async def cancel(self, trading: Trading, user_id: str, run_id: RunId) -> dict:
        return await trading.command(user_id, "backtest", m.CancelBacktest(id=run_id))

    @get("/{run_id:str}/export")
    async def export(self, trading: Trading, user_id: str, run_id: RunId,
                     what: Literal["metrics", "per_symbol", "curve", "daily", "orders", "trades", "fills",
                                   "refusals", "structures"] = "trades",
                     format: Literal["csv", "json"] = "csv") -> Response:
        out = await trading.command(user_id, "backtest", m.GetBacktest(id=run_id, export=what, format=format))
        return Response(out["text"], media_type=out["content_type"],
                        headers={"Content-Disposition": f'attachment; filename="backtest-{run_id}-{what}.{format}"'})
