"""Backtests in SQLite (``<data_dir>/backtests.db``): a row per run, sweep or sweep trial with its spec,
state and metrics, and the run's results (equity curve, daily equity, orders, trades, fills, refusals)
written in ONE transaction when it finishes — a failed or cancelled run has a state and an error, never
half its results. CSV / JSON export of any part."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Any

import msgspec

from shared import dblock
from shared.messages import BacktestSpec
from shared.sqlite import Database, NotFoundError

PARTS = ("curve", "daily", "orders", "trades", "fills", "refusals", "structures")
EXPORTS = ("metrics", "per_symbol", *PARTS)


class BacktestStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.db = Database(self.path)
        with dblock.opening(self.path):
            self.db.enable_wal()
            self.db["runs"].create({"id": str, "user_id": str, "kind": str, "parent": str, "name": str, "spec": str,
                                    "state": str, "error": str, "created": float, "finished": float, "done": float,
                                    "bars": int, "elapsed": float, "metrics": str, "per_symbol": str, "extra": str},
                                   pk="id", if_not_exists=True)
            self.db["results"].create({"run_id": str, **{p: str for p in PARTS}}, pk="run_id", if_not_exists=True)
            self.db["runs"].create_index(["user_id", "created"], if_not_exists=True)
            self.db["runs"].create_index(["parent"], if_not_exists=True)

    def create(self, run_id: str, user_id: str, kind: str, spec: msgspec.Struct, parent: str = "",
               name: str = "") -> None:
        self.db["runs"].insert({"id": run_id, "user_id": user_id, "kind": kind, "parent": parent, "name": name,
                                "spec": msgspec.json.encode(spec).decode(), "state": "queued", "error": "",
                                "created": time.time(), "finished": 0.0, "done": 0.0, "bars": 0, "elapsed": 0.0,
                                "metrics": "{}", "per_symbol": "{}", "extra": "{}"}, pk="id")

    def set_state(self, run_id: str, state: str, *, error: str = "", done: float | None = None,
                  bars: int | None = None) -> None:
        row: dict[str, Any] = {"state": state}
        if error:
            row["error"] = error
        if done is not None:
            row["done"] = done
        if bars is not None:
            row["bars"] = bars
        if state in ("done", "failed", "cancelled"):
            row["finished"] = time.time()
        self.db["runs"].update(run_id, row)

    def progress(self, run_id: str, done: float, bars: int | None = None) -> bool:
        """A running run's progress; False (and nothing changed) once the run has ended: a report that arrives
        after the results must not turn a finished run back into a running one."""
        with self.db.conn:
            cur = self.db.conn.execute("UPDATE runs SET state = 'running', done = ?, bars = COALESCE(?, bars) "
                                       "WHERE id = ? AND state IN ('queued', 'running')", [done, bars, run_id])
        return cur.rowcount == 1

    def finish(self, run_id: str, metrics: dict, per_symbol: dict, parts: dict[str, Any], *, bars: int,
               elapsed: float, extra: dict | None = None) -> None:
        """The run's results, all at once."""
        with self.db.conn:
            self.db["results"].upsert({"run_id": run_id, **{p: json.dumps(parts.get(p, [])) for p in PARTS}},
                                      pk="run_id", alter=True)  # alter: a store made before a part existed
            self.db["runs"].update(run_id, {"state": "done", "metrics": json.dumps(metrics),
                                            "per_symbol": json.dumps(per_symbol), "bars": bars, "elapsed": elapsed,
                                            "done": 1.0, "finished": time.time(), "extra": json.dumps(extra or {})})

    def finish_sweep(self, run_id: str, extra: dict) -> None:
        self.db["runs"].update(run_id, {"state": "done", "done": 1.0, "finished": time.time(),
                                        "extra": json.dumps(extra)})

    # ---- reading ------------------------------------------------------------------------------

    def get(self, run_id: str, user_id: str | None = None) -> dict[str, Any] | None:
        try:
            row = self.db["runs"].get(run_id)
        except NotFoundError:
            return None
        if user_id is not None and row["user_id"] != user_id:
            return None
        return _decode(row)

    def results(self, run_id: str) -> dict[str, Any]:
        try:
            row = self.db["results"].get(run_id)
        except NotFoundError:
            return {}
        return {p: json.loads(row.get(p) or "[]") for p in PARTS}

    def list(self, user_id: str, limit: int = 50, parent: str = "") -> list[dict[str, Any]]:
        rows = self.db["runs"].rows_where("user_id = ? and parent = ?", [user_id, parent], order_by="created desc",
                                          limit=limit)
        return [_decode(r) for r in rows]

    def children(self, parent: str) -> list[dict[str, Any]]:
        return [_decode(r) for r in self.db["runs"].rows_where("parent = ?", [parent], order_by="created")]

    def spec(self, run_id: str) -> BacktestSpec:
        return msgspec.json.decode(self.db["runs"].get(run_id)["spec"], type=BacktestSpec)

    def export(self, run_id: str, what: str, fmt: str = "csv") -> str:
        """One part of a run as CSV or JSON text (``metrics``, ``per_symbol``, ``curve``, ``daily``,
        ``orders``, ``trades``, ``fills``, ``refusals``, ``structures``)."""
        if what not in EXPORTS:
            raise ValueError(f"export one of {', '.join(EXPORTS)}")
        run = self.get(run_id)
        if run is None:
            raise KeyError(run_id)
        if what == "metrics":
            rows: list[dict] = [run["metrics"]]
        elif what == "per_symbol":
            rows = [{"symbol": s, **m} for s, m in run["per_symbol"].items()]
        else:
            rows = self.results(run_id).get(what, [])
            if what == "curve":
                rows = [{"ts": t, "equity": e, "drawdown": d} for t, e, d in rows]
            elif what == "daily":
                rows = [{"day": d, "equity": e} for d, e in rows]
            elif what == "structures" and fmt == "csv":  # one cell for the legs
                rows = [{**r, "legs": "; ".join(f"{leg['side']} {leg['quantity']} {leg['symbol']}" for leg in r["legs"])}
                        for r in rows]
        if fmt == "json":
            return json.dumps(rows, indent=1)
        out = io.StringIO()
        if rows:
            writer = csv.DictWriter(out, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        return out.getvalue()


def _decode(row: dict) -> dict[str, Any]:
    return {**row, "spec": json.loads(row["spec"]), "metrics": json.loads(row["metrics"]),
            "per_symbol": json.loads(row["per_symbol"]), "extra": json.loads(row["extra"] or "{}")}
