"""Backtests: what to run (``BacktestSpec``, ``SweepSpec``) and how a run is going (``BacktestProgress`` on
``kta.u.<user>.backtests``). The commands that carry them are in ``commands.py``."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from msgspec import Meta, Struct, field

from shared.messages.trading import RiskLimits
from shared.messages.vocabulary import Interval, Paise, UserId

# INFY, NSE:INFY, and an index's name with its single spaces (NIFTY 50, NSE:NIFTY BANK: an option strategy's underlying)
Symbol = Annotated[str, Meta(pattern=r"^([A-Z]+:)?[^\s:]+( [^\s:]+)*$", max_length=64)]


class BacktestSpec(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One backtest: a registered strategy with its params over ``symbols`` from ``start`` to ``end``
    (IST dates, inclusive) on ``interval`` candles. Money in paise."""

    strategy: str
    params: dict[str, Any] = field(default_factory=dict)
    symbols: Annotated[list[Symbol], Meta(min_length=1, max_length=50)]  # INFY, NSE:INFY, NIFTY 50
    start: date
    end: date
    interval: Interval = "5minute"
    capital: Annotated[Paise, Meta(ge=100_00, le=10**14)] = 10_00_000_00  # ₹10 lakh
    slippage_ticks: Annotated[int, Meta(ge=0, le=100)] = 1  # the fill model's spread (shared/fills.py)
    warmup_bars: Annotated[int, Meta(ge=0, le=5000)] = 300  # bars before ``start`` the strategy warms on
    risk: RiskLimits | None = None  # None: RiskLimits() defaults
    name: Annotated[str, Meta(max_length=80)] = ""


Objective = Literal["sharpe", "sortino", "calmar", "total_return", "profit_factor", "net_pnl"]


class SweepSpec(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A parameter search around ``base``: every combination of ``grid`` (method ``grid``) or ``trials``
    draws from it (``optuna``), each scored in-sample and out-of-sample. ``windows`` > 1 makes it a
    rolling walk-forward: the range is cut into that many consecutive windows, each chosen on its first
    ``in_sample`` fraction and tested on the rest."""

    base: BacktestSpec
    grid: Annotated[dict[str, Annotated[list[Any], Meta(min_length=1, max_length=100)]], Meta(min_length=1)]
    method: Literal["grid", "optuna"] = "grid"
    trials: Annotated[int, Meta(ge=1, le=10_000)] = 64  # optuna only
    objective: Objective = "sharpe"
    in_sample: Annotated[float, Meta(ge=0.1, le=0.95)] = 0.7
    windows: Annotated[int, Meta(ge=1, le=50)] = 1
    seed: int = 7


BacktestState = Literal["queued", "running", "done", "failed", "cancelled"]


class BacktestProgress(Struct, frozen=True, kw_only=True):
    """Published on ``kta.u.<user>.backtests`` while a run (or sweep) goes: ``done`` in [0, 1]."""

    user_id: UserId
    backtest_id: str
    kind: Literal["backtest", "sweep"] = "backtest"
    state: BacktestState
    done: float = 0.0
    bars: int = 0
    message: str = ""
    ts: int = 0  # epoch ns
