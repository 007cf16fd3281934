"""Parameter sweeps and walk-forward analysis.

The range is cut into ``windows`` consecutive windows (one: a single in-sample / out-of-sample split).
In each window every candidate parameter set — each combination of the grid, or ``trials`` draws of
Optuna's seeded TPE sampler over the same values — is backtested on the window's first ``in_sample``
fraction; the best by the objective is then backtested on the rest, which it has never seen. The report
always puts the out-of-sample figure beside the in-sample one, with the number of trials it was chosen
from (the more trials, the more the in-sample best is luck). A candidate that fails (a bad combination,
a run that raises) is recorded with its error and the sweep goes on.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any, Protocol

import msgspec

from shared.messages import BacktestSpec, SweepSpec
from strategy_worker.backtest.engine import Cancelled
from strategy_worker.backtest.metrics import objective


class Pool(Protocol):
    workers: int

    def map(self, specs: list[BacktestSpec]): ...


def combinations(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    keys = sorted(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def windows(start: date, end: date, count: int, in_sample: float) -> list[tuple[date, date, date, date]]:
    """(in-sample start, in-sample end, out-of-sample start, out-of-sample end) per window."""
    days = (end - start).days + 1
    size = days // count
    if size < 2:
        raise ValueError(f"{days} days cannot make {count} windows")
    out = []
    for k in range(count):
        a = start + timedelta(days=k * size)
        b = end if k == count - 1 else a + timedelta(days=size - 1)
        split = a + timedelta(days=max(1, min((b - a).days, round(((b - a).days + 1) * in_sample))) - 1)
        out.append((a, split, split + timedelta(days=1), b))
    return out


class Sweep:
    def __init__(self, spec: SweepSpec, pool: Pool, *, progress: Callable[[float, str], None] | None = None,
                 cancel: threading.Event | None = None) -> None:
        self.spec = spec
        self.pool = pool
        self.progress = progress
        self.cancel = cancel
        self.trials: list[dict[str, Any]] = []

    def run(self) -> dict[str, Any]:
        s = self.spec
        cuts = windows(s.base.start, s.base.end, s.windows, s.in_sample)
        per_window = len(combinations(s.grid)) if s.method == "grid" else s.trials
        self.total, self.done = len(cuts) * (per_window + 1), 0
        report = []
        for k, (a, b, c, d) in enumerate(cuts):
            scored = self._search(k, a, b)
            ok = [t for t in scored if t["ok"]]
            if not ok:
                report.append({"window": k, "in_sample": [str(a), str(b)], "out_of_sample": [str(c), str(d)],
                               "trials": len(scored), "error": "every trial failed"})
                continue
            best = max(ok, key=lambda t: t["score"])
            oos = self._evaluate([self._spec(best["params"], c, d)])[0]
            report.append({
                "window": k, "in_sample": [str(a), str(b)], "out_of_sample": [str(c), str(d)],
                "trials": len(scored), "failed": len(scored) - len(ok), "params": best["params"],
                "is_score": best["score"], "oos_score": objective(oos.get("metrics", {}), s.objective),
                "is_metrics": best["metrics"], "oos_metrics": oos.get("metrics", {}), "oos_error": oos.get("error"),
            })
        oos_scores = [w["oos_score"] for w in report if "oos_score" in w and math.isfinite(w["oos_score"])]
        return {"objective": s.objective, "method": s.method, "windows": report, "trials": self.trials,
                "trial_count": len(self.trials),
                "is_score": _mean([w["is_score"] for w in report if "is_score" in w]),
                "oos_score": _mean(oos_scores),
                "oos_net_pnl": sum(w["oos_metrics"].get("net_pnl", 0) for w in report if w.get("oos_metrics"))}

    # ---- candidates ---------------------------------------------------------------------------

    def _search(self, k: int, a: date, b: date) -> list[dict[str, Any]]:
        if self.spec.method == "grid":
            candidates = combinations(self.spec.grid)
            return self._score(k, candidates, self._evaluate([self._spec(p, a, b) for p in candidates]))
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=self.spec.seed + k))
        out: list[dict[str, Any]] = []
        keys = sorted(self.spec.grid)
        while len(out) < self.spec.trials:
            batch = [study.ask() for _ in range(min(self.pool.workers, self.spec.trials - len(out)))]
            params = [{key: t.suggest_categorical(key, self.spec.grid[key]) for key in keys} for t in batch]
            scored = self._score(k, params, self._evaluate([self._spec(p, a, b) for p in params]))
            for t, row in zip(batch, scored):
                study.tell(t, row["score"] if math.isfinite(row["score"]) else -1e18)
            out += scored
        return out

    def _score(self, k: int, params: list[dict], results: list[dict]) -> list[dict[str, Any]]:
        rows = []
        for p, r in zip(params, results):
            row = {"window": k, "params": p, "ok": r["ok"], "score": objective(r.get("metrics", {}),
                                                                               self.spec.objective),
                   "metrics": r.get("metrics", {}), "error": r.get("error"), "field": r.get("field")}
            rows.append(row)
            self.trials.append(row)
        return rows

    def _spec(self, params: dict[str, Any], a: date, b: date) -> BacktestSpec:
        base = self.spec.base
        return msgspec.structs.replace(base, params={**base.params, **params}, start=a, end=b)

    def _evaluate(self, specs: list[BacktestSpec]) -> list[dict[str, Any]]:
        out: list[dict[str, Any] | None] = [None] * len(specs)
        for i, result in self.pool.map(specs):
            out[i] = result
            self._tick("in sample")
        return out  # type: ignore[return-value]

    def _tick(self, what: str) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled()
        self.done += 1
        if self.progress is not None:
            self.progress(min(1.0, self.done / self.total), what)


def _mean(xs: list[float]) -> float | None:
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    return round(sum(xs) / len(xs), 6) if xs else None
