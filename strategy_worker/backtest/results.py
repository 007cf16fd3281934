"""What a backtest records as it runs: orders, fills, round-trip trades net of charges, refusals, and the
equity curve — a point per trading day plus an intraday curve thinned to at most ``CURVE_POINTS``, so the
record of a long range stays small (the data itself is streamed). Money in paise."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from shared import ist
from shared.kite.models import Instrument
from shared.messages import OrderRequest, Signal, SignalGroup
from shared.trading.positions import Closed

CURVE_POINTS = 2000
REFUSALS_KEPT = 200


@dataclass
class SymbolStats:
    realised: int = 0  # gross, paise
    charges: int = 0
    trades: int = 0
    wins: int = 0
    turnover: int = 0


@dataclass
class Recorder:
    capital: int
    curve_step: int = 1  # record every n-th bar's equity in the intraday curve
    orders: list[dict[str, Any]] = field(default_factory=list)
    fills: list[dict[str, Any]] = field(default_factory=list)
    trades: list[dict[str, Any]] = field(default_factory=list)
    refusals: deque = field(default_factory=lambda: deque(maxlen=REFUSALS_KEPT))
    refused: int = 0
    groups: dict[str, int] = field(default_factory=dict)  # group state -> count
    group_log: dict[str, dict[str, str]] = field(default_factory=dict)  # group id -> what it was, how it ended
    products: dict[tuple[str, int], str] = field(default_factory=dict)
    by_symbol: dict[str, SymbolStats] = field(default_factory=dict)
    charges: int = 0
    turnover: int = 0
    daily: list[tuple[str, int]] = field(default_factory=list)  # (day, equity at its close)
    curve: list[tuple[int, int, int]] = field(default_factory=list)  # (ts, equity, drawdown)
    peak: int = 0
    max_drawdown: int = 0  # paise, positive
    max_drawdown_pct: float = 0.0
    peak_ts: int = 0
    longest_dd_s: int = 0  # longest time below a previous peak, seconds
    bars: int = 0
    bars_in_market: int = 0
    _orders_by_tag: dict[str, dict] = field(default_factory=dict)
    _open_costs: dict[tuple[str, int], deque] = field(default_factory=dict)  # FIFO (qty, charge per unit)

    def __post_init__(self) -> None:
        self.peak = self.capital

    # ---- orders -------------------------------------------------------------------------------

    def order(self, ts: int, req: OrderRequest, status: str, fill_price: int, strategy_id: str) -> None:
        row = {"tag": req.tag, "time": ist.stamp(ts), "strategy_id": strategy_id, "signal_id": req.signal_id,
               "kind": req.kind, "symbol": f"{req.exchange.value}:{req.tradingsymbol}",
               "side": req.transaction_type.value, "order_type": req.order_type.value, "quantity": req.quantity,
               "price": req.price, "trigger_price": req.trigger_price, "product": req.product.value,
               "status": status, "fill_price": fill_price, "fill_time": ist.stamp(ts) if fill_price else ""}
        self.orders.append(row)
        self._orders_by_tag[req.tag] = row

    def external_order(self, ts: int, strategy_id: str, inst: Instrument, side: str, qty: int, price: int,
                       why: str, product: str = "MIS") -> None:
        row = {"tag": "", "time": ist.stamp(ts), "strategy_id": strategy_id, "signal_id": "", "kind": why,
               "symbol": f"{inst.exchange}:{inst.tradingsymbol}", "side": side, "order_type": "MARKET",
               "quantity": qty, "price": 0, "trigger_price": 0, "product": product, "status": "COMPLETE",
               "fill_price": price, "fill_time": ist.stamp(ts)}
        self.orders.append(row)

    def gtt(self, ts: int, t, status: str) -> None:
        """A GTT placed or modified (``gtts.Trigger``): a row of the orders, ``order_type`` GTT, ``trigger_price``
        its stop's trigger, ``price`` its target's (0: none); later TRIGGERED or DELETED."""
        p, s = t.protection, t.spec
        values = dict(zip(s.kinds, s.trigger_values))
        row = self._orders_by_tag.get(t.tag)
        if row is None:
            row = {"tag": t.tag, "time": ist.stamp(ts), "strategy_id": p.strategy_id, "signal_id": p.signal_id,
                   "kind": "gtt", "symbol": f"{p.exchange}:{p.tradingsymbol}", "side": s.side.value,
                   "order_type": "GTT", "quantity": 0, "price": 0, "trigger_price": 0, "product": p.product,
                   "status": status, "fill_price": 0, "fill_time": ""}
            self.orders.append(row)
            self._orders_by_tag[t.tag] = row
        row.update(quantity=s.quantity, price=values.get("target", 0), trigger_price=values.get("stop_loss", 0),
                   status=status)

    def modified(self, tag: str, order_type: str, price: int, quantity: int) -> None:
        """An order modified at the exchange (a stop turned into a LIMIT at its target, chased): its row as it
        stands now."""
        row = self._orders_by_tag.get(tag)
        if row is not None:
            row.update(order_type=order_type, price=price, quantity=quantity)

    def order_status(self, tag: str, status: str, fill_price: int = 0, ts: int = 0) -> None:
        row = self._orders_by_tag.get(tag)
        if row is not None:
            row["status"] = status
            if fill_price:
                row["fill_price"], row["fill_time"] = fill_price, ist.stamp(ts)

    def group(self, ts: int, group: SignalGroup, state: str, detail: str) -> None:
        """How a multi-leg group ended (completed, rolled_back, needs_attention)."""
        self.groups[state] = self.groups.get(state, 0) + 1
        self.group_log[group.id] = {"structure": group.structure, "intent": group.intent, "reason": group.reason,
                                    "state": state, "detail": detail}
        if state != "completed":
            self.refusals.append({"time": ist.stamp(ts), "signal_id": group.id, "code": state, "reason": detail})

    def refusal(self, ts: int, sig: Signal | SignalGroup, code: str, reason: str) -> None:
        self.refused += 1
        self.refusals.append({"time": ist.stamp(ts), "signal_id": sig.id, "code": code, "reason": reason})

    # ---- fills and trades ---------------------------------------------------------------------

    def fill(self, ts: int, strategy_id: str, signal_id: str, kind: str, inst: Instrument, side: str, qty: int,
             price: int, cost: int, closed: list[Closed]) -> None:
        symbol = f"{inst.exchange}:{inst.tradingsymbol}"
        value = qty * price
        self.charges += cost
        self.turnover += value
        stats = self.by_symbol.setdefault(symbol, SymbolStats())
        stats.charges += cost
        stats.turnover += value
        self.fills.append({"time": ist.stamp(ts), "ts": ts, "strategy_id": strategy_id, "signal_id": signal_id,
                           "kind": kind, "symbol": symbol, "side": side, "quantity": qty, "price": price,
                           "charges": cost})
        per_unit = cost / qty
        queue = self._open_costs.setdefault((strategy_id, inst.instrument_token), deque())
        closing = sum(c.quantity for c in closed)
        for piece in closed:
            entry_cost, left = 0.0, piece.quantity
            while left and queue:
                q, unit = queue[0]
                used = min(q, left)
                entry_cost += used * unit
                left -= used
                if used == q:
                    queue.popleft()
                else:
                    queue[0] = (q - used, unit)
            charges = round(entry_cost + piece.quantity * per_unit)
            net = piece.pnl - charges
            stats.realised += piece.pnl
            stats.trades += 1
            stats.wins += net > 0
            self.trades.append({"symbol": symbol, "strategy_id": strategy_id, "direction": piece.direction,
                                "quantity": piece.quantity, "entry_time": piece.entry_timestamp,
                                "exit_time": piece.exit_timestamp, "entry_price": piece.entry_price,
                                "exit_price": piece.exit_price, "pnl": piece.pnl, "charges": charges, "net_pnl": net,
                                "exit_kind": kind})
        if qty > closing:
            queue.append((qty - closing, per_unit))

    # ---- equity -------------------------------------------------------------------------------

    def equity(self, ts: int, equity: int) -> None:
        """The equity after a bar with a position open, or after a fill (O(1)): peaks and drawdowns."""
        if equity >= self.peak:
            if equity > self.peak and self.peak_ts and ts - self.peak_ts > self.longest_dd_s:
                self.longest_dd_s = ts - self.peak_ts
            self.peak, self.peak_ts = equity, ts
            return
        dd = self.peak - equity
        if dd > self.max_drawdown:
            self.max_drawdown = dd
            self.max_drawdown_pct = dd / self.peak
        self.longest_dd_s = max(self.longest_dd_s, ts - self.peak_ts)

    def sample(self, ts: int, equity: int) -> int:
        """A point of the intraday curve (every ``curve_step``-th bar); returns the step to keep."""
        self.curve.append((ts, equity, self.peak - equity))
        if len(self.curve) > 2 * CURVE_POINTS:  # the range was longer than planned: halve the resolution
            self.curve = self.curve[::2]
            self.curve_step *= 2
        return self.curve_step

    def day_close(self, day: str, equity: int) -> None:
        if self.daily and self.daily[-1][0] == day:
            self.daily[-1] = (day, equity)
        else:
            self.daily.append((day, equity))


def structures(rec: Recorder) -> list[dict[str, Any]]:
    """Each option structure of the run, from its entry group's first fill until every leg is flat again:
    its legs (average entry and exit price per contract), P&L net of charges from its own fills, and how it
    ended (the exit group's reason, a rollback, expiry settlement). A structure still open when the range ends
    has no P&L (its legs are never priced past the data); only strategies that placed groups have rows."""
    placers = {f["strategy_id"] for f in rec.fills if f["signal_id"] in rec.group_log}
    out: list[dict[str, Any]] = []
    current: dict[str, dict[str, Any]] = {}  # strategy -> the structure it holds
    for f in rec.fills:
        sid = f["strategy_id"]
        if sid not in placers:
            continue
        s = current.get(sid)
        if s is None:
            log = rec.group_log.get(f["signal_id"], {})
            s = current[sid] = {"opened": f["time"], "opened_ts": f["ts"], "closed": "", "closed_ts": 0,
                                "strategy_id": sid,
                                "structure": log.get("structure", ""), "group_id": f["signal_id"], "legs": {},
                                "held": {}, "cash": 0, "charges": 0, "ended": ""}
            out.append(s)
        sign = 1 if f["side"] == "BUY" else -1
        leg = s["legs"].setdefault(f["symbol"], {"symbol": f["symbol"], "side": f["side"], "quantity": 0,
                                                 "_in": 0, "_out": 0, "_out_qty": 0})
        if f["side"] == leg["side"]:  # opening this leg (or adding to it)
            leg["quantity"] += f["quantity"]
            leg["_in"] += f["quantity"] * f["price"]
        else:
            leg["_out_qty"] += f["quantity"]
            leg["_out"] += f["quantity"] * f["price"]
        s["held"][f["symbol"]] = s["held"].get(f["symbol"], 0) + sign * f["quantity"]
        s["cash"] -= sign * f["quantity"] * f["price"]
        s["charges"] += f["charges"]
        if not any(s["held"].values()):
            s["closed"], s["closed_ts"], s["ended"] = f["time"], f["ts"], _ended(rec, f)
            del current[sid]
    return [_structure_row(s) for s in out]


def _ended(rec: Recorder, f: dict[str, Any]) -> str:
    log = rec.group_log.get(f["signal_id"], {})
    if f["kind"] == "rollback":
        return f"rolled back: {log.get('detail', '')}".rstrip(": ")
    if f["kind"] == "expiry":
        return "settled at expiry (intrinsic value)"
    if f["kind"] == "exit" and log:
        return log.get("reason", "") or "exit"
    return f["kind"]


def _structure_row(s: dict[str, Any]) -> dict[str, Any]:
    closed = bool(s["closed"])
    legs = [{"symbol": leg["symbol"], "side": leg["side"], "quantity": leg["quantity"],
             "entry_price": round(leg["_in"] / leg["quantity"]) if leg["quantity"] else None,
             "exit_price": round(leg["_out"] / leg["_out_qty"]) if leg["_out_qty"] else None}
            for leg in s["legs"].values()]
    return {"opened": s["opened"], "closed": s["closed"], "opened_ts": s["opened_ts"], "closed_ts": s["closed_ts"],
            "strategy_id": s["strategy_id"],
            "structure": s["structure"], "group_id": s["group_id"], "legs": legs,
            "gross_pnl": s["cash"] if closed else None, "charges": s["charges"],
            "net_pnl": s["cash"] - s["charges"] if closed else None,
            "ended": s["ended"] if closed else "open when the range ended"}
