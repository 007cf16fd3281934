"""The three summaries of the original design: the journal's performance summary (from round trips
matched FIFO per user, strategy and instrument), the risk summary and the execution summary.
Money in integer paise; percentages as floats."""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from typing import Any

from msgspec import Struct, field

from shared.trading.order import is_terminal
from shared.trading.positions import FifoBook, signed


class RoundTrip(Struct, frozen=True, kw_only=True):
    """One row of the trades table: an entry lot closed by an exit fill (timestamp = the exit's)."""

    timestamp: str
    strategy: str
    symbol: str
    type: str  # LONG or SHORT
    qty: int
    entry: int
    exit: int
    pnl: int


class StrategyStats(Struct, kw_only=True):
    total_trades: int = 0
    wins: int = 0
    losses: int = 0
    win_rate: float = 0.0
    total_pnl: int = 0


class JournalSummary(Struct, kw_only=True):
    total_trades: int = 0
    wins: int = 0
    losses: int = 0
    win_rate: float = 0.0  # percent
    total_pnl: int = 0
    avg_win: int = 0
    avg_loss: int = 0  # negative (or 0)
    profit_factor: float | None = None  # gross profit / gross loss; None without losses
    max_drawdown: int = 0  # largest fall of cumulative realised P&L from its running peak (>= 0)
    by_strategy: dict[str, StrategyStats] = field(default_factory=dict)
    trades: list[RoundTrip] = field(default_factory=list)


def round_trips(trades: Iterable[dict[str, Any]], day: str | None = None) -> list[RoundTrip]:
    """Match fills (journal trade rows, in fill order) FIFO per (user, strategy, instrument). With ``day``,
    only the round trips closed by that day's fills: earlier fills among ``trades`` open the lots they close."""
    books: dict[tuple[str, str, str, str], FifoBook] = {}
    out: list[RoundTrip] = []
    for t in trades:
        key = (t.get("user_id", ""), t.get("strategy_id", ""), t["exchange"], t["tradingsymbol"])
        book = books.setdefault(key, FifoBook())
        closed = book.fill(signed(t["transaction_type"], t["quantity"]), t["price"], t["fill_timestamp"])
        if day is not None and t.get("day", t["fill_timestamp"][:10]) != day:
            continue
        for piece in closed:
            out.append(RoundTrip(timestamp=piece.exit_timestamp, strategy=key[1], symbol=t["tradingsymbol"],
                                 type=piece.direction, qty=piece.quantity, entry=piece.entry_price,
                                 exit=piece.exit_price, pnl=piece.pnl))
    return out


def _rate(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 0.0


def _mean(total: int, n: int) -> int:
    return round(Fraction(total, n)) if n else 0


def journal_summary(trades: Iterable[dict[str, Any]], day: str | None = None) -> JournalSummary:
    """The performance summary of the round trips in ``trades`` (of those closed on ``day`` if given)."""
    trips = round_trips(trades, day)
    wins = [t.pnl for t in trips if t.pnl > 0]
    losses = [t.pnl for t in trips if t.pnl < 0]
    peak = cumulative = drawdown = 0
    by_strategy: dict[str, StrategyStats] = {}
    for t in trips:
        cumulative += t.pnl
        peak = max(peak, cumulative)
        drawdown = max(drawdown, peak - cumulative)
        stats = by_strategy.setdefault(t.strategy, StrategyStats())
        stats.total_trades += 1
        stats.wins += t.pnl > 0
        stats.losses += t.pnl < 0
        stats.total_pnl += t.pnl
    for stats in by_strategy.values():
        stats.win_rate = _rate(stats.wins, stats.total_trades)
    return JournalSummary(
        total_trades=len(trips), wins=len(wins), losses=len(losses), win_rate=_rate(len(wins), len(trips)),
        total_pnl=sum(t.pnl for t in trips), avg_win=_mean(sum(wins), len(wins)),
        avg_loss=_mean(sum(losses), len(losses)),
        profit_factor=sum(wins) / -sum(losses) if losses else None,
        max_drawdown=drawdown, by_strategy=by_strategy, trades=trips,
    )


class RiskSummary(Struct, kw_only=True):
    user_id: str
    state: str  # kill switch state: ACTIVE / REDUCING / HALTED
    kill_switch_active: bool  # True when not ACTIVE (the original design's flag)
    reason: str = ""
    daily_pnl: int = 0
    realised: int = 0
    unrealised: int = 0
    total_exposure: int = 0
    max_daily_loss: int = 0
    max_exposure: int = 0
    position_count: int = 0
    trade_count: int = 0
    utilization_pct: float = 0.0  # exposure as percent of max_exposure
    loss_utilization_pct: float = 0.0  # the kill switch's loss as percent of max_daily_loss
    loss: int = 0  # the loss the kill switch counts (-daily_pnl, or after a reset the loss since it)
    loss_remaining: int = 0  # max_daily_loss - loss, ≥ 0: how much more loss trips the switch
    session_start: str = ""


def open_position_count(positions: Iterable[Any], protection: Iterable[Any]) -> int:
    """Instruments held now: the broker's day positions with a quantity and every position kta tracks (a
    PositionSnapshot's ``positions`` and ``protection``). A CNC lot bought on an earlier day is a holding at Kite,
    not a day position: counted from the broker's positions alone it was missing ("Open positions 0" in the report
    beside a GTT-protected lot)."""
    held = {(p.exchange, p.tradingsymbol, p.product) for p in positions if p.quantity}
    held |= {(p.exchange, p.tradingsymbol, p.product) for p in protection if p.quantity}
    return len(held)


def risk_summary(*, user_id: str, state: str, reason: str, realised: int, unrealised: int, loss: int, exposure: int,
                 max_daily_loss: int, max_exposure: int, position_count: int, trade_count: int,
                 session_start: str) -> RiskSummary:
    """``loss``: the kill switch's own (``KillSwitch.loss``), never recomputed from the day P&L here: after a
    reset the switch counts from its baseline, and a figure that counted otherwise would say the wrong thing."""
    daily_pnl = realised + unrealised
    return RiskSummary(
        user_id=user_id, state=state, kill_switch_active=state != "ACTIVE", reason=reason, daily_pnl=daily_pnl,
        realised=realised, unrealised=unrealised, total_exposure=exposure, max_daily_loss=max_daily_loss,
        max_exposure=max_exposure, position_count=position_count, trade_count=trade_count,
        utilization_pct=_rate(exposure, max_exposure), loss_utilization_pct=_rate(loss, max_daily_loss), loss=loss,
        loss_remaining=max(0, max_daily_loss - loss),
        session_start=session_start,
    )


class ExecutionSummary(Struct, kw_only=True):
    pending_orders: int = 0
    filled_orders: int = 0
    rejected: int = 0
    cancelled: int = 0
    total_orders: int = 0
    pending_order_ids: list[str] = field(default_factory=list)
    avg_fill_latency_ms: float | None = None


def _final(order: dict[str, Any]) -> str:
    for value in (order.get("status", ""), order.get("state", "")):
        if is_terminal(value):
            return value
    return ""


def execution_summary(orders: Iterable[dict[str, Any]], fill_latencies_ms: Iterable[float] = ()) -> ExecutionSummary:
    """From the journal's order rows; ``fill_latencies_ms`` if the engine measured them."""
    summary = ExecutionSummary()
    for order in orders:
        summary.total_orders += 1
        final = _final(order)
        if final == "COMPLETE":
            summary.filled_orders += 1
        elif final == "REJECTED" or final == "FAILED":
            summary.rejected += 1
        elif final == "CANCELLED":
            summary.cancelled += 1
        else:
            summary.pending_orders += 1
            summary.pending_order_ids.append(order.get("order_id") or order["tag"])
    latencies = list(fill_latencies_ms)
    if latencies:
        summary.avg_fill_latency_ms = sum(latencies) / len(latencies)
    return summary
