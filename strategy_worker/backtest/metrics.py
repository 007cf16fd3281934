"""A backtest's figures, from its record. Return ratios come from empyrical-reloaded (Quantopian's
maintained metrics library) on daily returns of the equity; trade statistics from the round trips net of
charges. Money in paise; ratios as fractions (0.12 is 12 %).

- ``total_return`` net P&L / capital; ``annual_return`` CAGR over the trading days (252 a year)
- ``sharpe``, ``sortino`` annualised from daily returns (risk-free 0); ``calmar`` annual return / max DD
- ``max_drawdown`` deepest fall of equity from a peak, bar by bar (paise and fraction of the peak);
  ``max_drawdown_days`` longest time below a previous peak, calendar days
- ``win_rate`` winning trades (net of charges) / trades; ``profit_factor`` gross wins / gross losses (net);
  ``expectancy`` mean net P&L per trade
- ``exposure`` share of bars with a position open; ``turnover`` traded value / capital; ``charges`` total
- ``groups``, ``groups_rolled_back``, ``groups_needing_attention``: multi-leg structures placed and how they ended
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from strategy_worker.backtest.results import Recorder


def _finite(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 6)


def trade_stats(nets: list[int]) -> dict[str, Any]:
    wins = [n for n in nets if n > 0]
    losses = [-n for n in nets if n < 0]
    return {
        "trades": len(nets),
        "win_rate": _finite(len(wins) / len(nets)) if nets else None,
        "profit_factor": _finite(sum(wins) / sum(losses)) if losses else (None if not wins else math.inf),
        "expectancy": round(sum(nets) / len(nets)) if nets else None,
        "avg_win": round(sum(wins) / len(wins)) if wins else None,
        "avg_loss": -round(sum(losses) / len(losses)) if losses else None,
    }


def daily_returns(capital: int, daily: list[tuple[str, int]]) -> np.ndarray:
    equity = np.array([capital] + [e for _, e in daily], dtype=np.float64)
    return np.diff(equity) / equity[:-1]


def summary(rec: Recorder, capital: int) -> dict[str, Any]:
    """The metrics table of a run (the whole portfolio)."""
    returns = daily_returns(capital, rec.daily)
    final = rec.daily[-1][1] if rec.daily else capital
    net = final - capital
    stats = trade_stats([t["net_pnl"] for t in rec.trades])
    if stats["profit_factor"] == math.inf:
        stats["profit_factor"] = None
    sharpe = sortino = calmar = annual = None
    if len(returns) >= 2:
        import empyrical  # here, not at the top: scipy.stats behind it is ~1.2 s of CPU every worker start paid

        annual = _finite(empyrical.annual_return(returns))
        sharpe = _finite(empyrical.sharpe_ratio(returns))
        sortino = _finite(empyrical.sortino_ratio(returns))
        if rec.max_drawdown_pct:
            calmar = _finite(annual / rec.max_drawdown_pct) if annual is not None else None
    return {
        "capital": capital, "final_equity": final, "net_pnl": net,
        "gross_pnl": net + rec.charges, "charges": rec.charges,
        "total_return": _finite(net / capital), "annual_return": annual,
        "sharpe": sharpe, "sortino": sortino, "calmar": calmar,
        "max_drawdown": rec.max_drawdown, "max_drawdown_pct": _finite(rec.max_drawdown_pct),
        "max_drawdown_days": round(rec.longest_dd_s / 86400, 2),
        **stats,
        "exposure": _finite(rec.bars_in_market / rec.bars) if rec.bars else None,
        "turnover": _finite(rec.turnover / capital),
        "days": len(rec.daily), "bars": rec.bars, "orders": len(rec.orders), "fills": len(rec.fills),
        "refused": rec.refused,
        **({"groups": sum(rec.groups.values()), "groups_rolled_back": rec.groups.get("rolled_back", 0),
            "groups_needing_attention": rec.groups.get("needs_attention", 0)} if rec.groups else {}),
    }


def per_symbol(rec: Recorder) -> dict[str, dict[str, Any]]:
    """Per instrument: P&L gross and net of charges, trades and their statistics."""
    out = {}
    for symbol, s in sorted(rec.by_symbol.items()):
        nets = [t["net_pnl"] for t in rec.trades if t["symbol"] == symbol]
        stats = trade_stats(nets)
        if stats["profit_factor"] == math.inf:
            stats["profit_factor"] = None
        out[symbol] = {"gross_pnl": s.realised, "charges": s.charges, "net_pnl": sum(nets),
                       "turnover": s.turnover, **stats}
    return out


def objective(metrics: dict[str, Any], name: str) -> float:
    """The figure a sweep maximises; a run without it scores -inf."""
    value = metrics.get(name)
    return float(value) if value is not None and math.isfinite(float(value)) else -math.inf
