import random
from collections import deque

import pandas as pd
import pytest

from shared.trading.summary import execution_summary, journal_summary, risk_summary

from .kit import USER, journal


def fills(rows):
    """(strategy, symbol, side, qty, price) tuples to journal trades, one per second."""
    return [
        dict(user_id=USER, strategy_id=s, exchange="NSE", tradingsymbol=sym, transaction_type=side, quantity=q,
             price=p, fill_timestamp=f"2026-11-24 10:{i // 60:02d}:{i % 60:02d}", instrument_token=1,
             product="MIS", order_id=f"O{i}", trade_id=f"T{i}")
        for i, (s, sym, side, q, p) in enumerate(rows)
    ]


def test_partial_close_and_reversal_by_hand():
    s = journal_summary(fills([
        ("s1", "INFY", "BUY", 10, 10000),
        ("s1", "INFY", "SELL", 4, 11000),   # long 4 closed: +4000
        ("s1", "INFY", "SELL", 10, 9000),   # long 6 closed: -6000, short 4 opened at 9000
        ("s1", "INFY", "BUY", 4, 8500),     # short 4 closed: +2000
    ]))
    assert [(t.type, t.qty, t.entry, t.exit, t.pnl) for t in s.trades] == [
        ("LONG", 4, 10000, 11000, 4000), ("LONG", 6, 10000, 9000, -6000), ("SHORT", 4, 9000, 8500, 2000)]
    assert (s.total_trades, s.wins, s.losses, s.total_pnl) == (3, 2, 1, 0)
    assert (s.avg_win, s.avg_loss, s.profit_factor, s.max_drawdown) == (3000, -6000, 1.0, 6000)
    assert s.win_rate == pytest.approx(200 / 3)


def independent_summary(trades: list[dict]) -> dict:
    """Unit-by-unit FIFO over a DataFrame: every unit bought or sold is matched with one opposite unit."""
    df = pd.DataFrame(trades).reset_index(names="fill_no")
    units = df.loc[df.index.repeat(df["quantity"])]
    pairs = []
    for _, g in units.groupby(["user_id", "strategy_id", "exchange", "tradingsymbol"], sort=False):
        open_units: deque = deque()
        for u in g.itertuples():
            sign = 1 if u.transaction_type == "BUY" else -1
            if open_units and open_units[0][0] != sign:
                esign, eprice, efill = open_units.popleft()
                pairs.append((efill, u.fill_no, u.strategy_id, esign * (u.price - eprice)))
            else:
                open_units.append((sign, u.price, u.fill_no))
    p = pd.DataFrame(pairs, columns=["entry_fill", "exit_fill", "strategy", "pnl"])
    trips = p.groupby(["exit_fill", "entry_fill", "strategy"], as_index=False)["pnl"].sum()
    trips = trips.sort_values(["exit_fill", "entry_fill"])
    curve = trips["pnl"].cumsum()
    drawdown = (curve.cummax().clip(lower=0) - curve).max()
    wins, losses = trips[trips.pnl > 0].pnl, trips[trips.pnl < 0].pnl
    per = trips.groupby("strategy")["pnl"].agg(["count", "sum"])
    return {
        "total_trades": len(trips), "wins": len(wins), "losses": len(losses),
        "total_pnl": int(trips.pnl.sum()), "gross_win": int(wins.sum()), "gross_loss": int(losses.sum()),
        "max_drawdown": int(max(drawdown, 0)), "pnl_sequence": trips.pnl.astype(int).tolist(),
        "per_strategy": {k: (int(r["count"]), int(r["sum"])) for k, r in per.iterrows()},
    }


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_summary_equals_independent_recomputation_from_the_trades_table(tmp_path, seed):
    rng = random.Random(seed)
    rows = [(rng.choice(["s1", "s2", "s3"]), rng.choice(["INFY", "TCS"]), rng.choice(["BUY", "SELL"]),
             rng.randint(1, 15), rng.randint(9000, 11000)) for _ in range(120)]
    j = journal(tmp_path)
    for t in fills(rows):
        t.pop("user_id")
        assert j.record_trade(USER, **t)
    trades = j.trades(USER, "2026-11-24")
    s, ref = journal_summary(trades), independent_summary(trades)
    assert (s.total_trades, s.wins, s.losses, s.total_pnl, s.max_drawdown) == (
        ref["total_trades"], ref["wins"], ref["losses"], ref["total_pnl"], ref["max_drawdown"])
    assert [t.pnl for t in s.trades] == ref["pnl_sequence"]
    assert s.win_rate == pytest.approx(100 * ref["wins"] / ref["total_trades"])
    assert s.profit_factor == pytest.approx(ref["gross_win"] / -ref["gross_loss"])
    assert s.avg_win == round(ref["gross_win"] / ref["wins"]) and s.avg_loss == round(ref["gross_loss"] / ref["losses"])
    assert {k: (v.total_trades, v.total_pnl) for k, v in s.by_strategy.items()} == ref["per_strategy"]


def test_empty_journal_summary():
    s = journal_summary([])
    assert (s.total_trades, s.win_rate, s.profit_factor, s.max_drawdown) == (0, 0.0, None, 0)


def test_risk_and_execution_summaries():
    r = risk_summary(user_id=USER, state="REDUCING", reason="warn", realised=-30_000_00, unrealised=-10_000_00,
                     loss=40_000_00, exposure=2_500_000_00, max_daily_loss=50_000_00, max_exposure=10_000_000_00,
                     position_count=2, trade_count=7, session_start="2026-11-24 09:15:00")
    assert r.daily_pnl == -40_000_00 and r.kill_switch_active
    assert r.utilization_pct == 25.0 and r.loss_utilization_pct == 80.0 and r.loss_remaining == 10_000_00
    # after a reset the kill switch counts from its baseline: the summary says what the switch counts
    after_reset = risk_summary(user_id=USER, state="ACTIVE", reason="", realised=-30_000_00, unrealised=-10_000_00,
                               loss=5_000_00, exposure=0, max_daily_loss=50_000_00, max_exposure=10_000_000_00,
                               position_count=0, trade_count=7, session_start="")
    assert (after_reset.loss_utilization_pct, after_reset.loss_remaining) == (10.0, 45_000_00)
    orders = [{"tag": "a", "order_id": "1", "state": "COMPLETE", "status": "COMPLETE"},
              {"tag": "b", "order_id": "2", "state": "OPEN", "status": "OPEN"},
              {"tag": "c", "order_id": "", "state": "UNKNOWN", "status": ""},
              {"tag": "d", "order_id": "4", "state": "REJECTED", "status": "REJECTED"},
              {"tag": "e", "order_id": "5", "state": "CANCELLED", "status": "CANCELLED"}]
    e = execution_summary(orders, [10.0, 30.0])
    assert (e.total_orders, e.filled_orders, e.pending_orders, e.rejected, e.cancelled) == (5, 1, 2, 1, 1)
    assert e.pending_order_ids == ["2", "c"] and e.avg_fill_latency_ms == 20.0
