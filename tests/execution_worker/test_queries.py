"""What the gateway asks the execution worker over NATS, and the shapes of the replies: the journal
(``cmd.journal.*``), the audit of an order, the risk and the execution summaries."""

import msgspec

from execution_worker.journal_reads import order_of
from shared import messages as m
from shared import subjects
from shared.trading.order import OrderState
from tests.execution_worker.kit import USER, signal
from tests.helpers import eventually


async def ask(bus, service, verb, cmd):
    reply = await bus.request(subjects.cmd(USER, service, verb), cmd)
    assert isinstance(reply, (m.Ok, m.Error)), reply
    return reply


async def test_replies_of_the_journal_risk_and_execution_queries(bus, stack):
    _, journal, _ = stack
    buy, sell = signal("q-buy-1", qty=3), signal("q-sell-1", side="SELL", qty=3, intent="exit")
    await bus.js_publish(subjects.signals(USER), buy, msg_id=buy.id)
    # the exit is judged from the strategy's position, which the buy's journaled fill makes (not its status)
    await eventually(lambda: sum(t["quantity"] for t in journal.trades(USER) if t["signal_id"] == buy.id) == 3,
                     what="the buy's fill journaled")
    await bus.js_publish(subjects.signals(USER), sell, msg_id=sell.id)
    (row,) = await eventually(lambda: [r for r in journal.orders_of_signal(sell.id) if r["status"] == "COMPLETE"],
                              what="sell")
    await eventually(lambda: journal.trades_of_order(row["order_id"]), what="the sell's fill journaled")

    reply = await ask(bus, "journal", "journal", m.GetJournal())
    assert {"trades", "signals", "risk_events"} <= set(reply.data)
    assert {s["id"] for s in reply.data["signals"]} >= {buy.id, sell.id}
    assert {"trade_id", "order_id", "quantity", "price", "transaction_type"} <= set(reply.data["trades"][0])

    reply = await ask(bus, "journal", "summary", m.GetJournalSummary())
    assert {"total_trades", "wins", "losses", "win_rate", "total_pnl", "avg_win", "avg_loss", "profit_factor",
            "max_drawdown", "by_strategy", "trades"} <= set(reply.data)
    assert reply.data["total_trades"] >= 1 and "test-1" in reply.data["by_strategy"]

    reply = await ask(bus, "journal", "audit", m.GetAudit(id=row["order_id"]))
    audit = reply.data
    assert audit["signal"]["id"] == sell.id and audit["signal"]["decision"] == "accepted"
    (order,) = audit["orders"]
    assert order["order_id"] == row["order_id"] and order["events"] and order["trades"]
    missing = await ask(bus, "journal", "audit", m.GetAudit(id="no-such-order"))
    assert isinstance(missing, m.Error) and missing.field == "id"

    reply = await ask(bus, "risk", "summary", m.GetRiskSummary())
    assert {"user_id", "kill_switch_active", "daily_pnl", "total_exposure", "max_daily_loss", "max_exposure",
            "position_count", "trade_count", "utilization_pct", "loss_utilization_pct"} <= set(reply.data)
    assert reply.data["state"]["state"] == "ACTIVE" and reply.data["trade_count"] >= 2

    reply = await ask(bus, "execution", "summary", m.GetExecutionSummary())
    assert {"pending_orders", "filled_orders", "rejected", "cancelled", "total_orders",
            "avg_fill_latency_ms"} <= set(reply.data)
    assert reply.data["filled_orders"] >= 2 and reply.data["avg_fill_latency_ms"] > 0
    # the session report's counts are its day's: an order journaled on an earlier day is not among them
    today = row["day"]
    earlier = msgspec.structs.replace(order_of(row), tag="q-earlier-1", order_id="", day="2026-01-05",
                                      state=OrderState.REJECTED, status="REJECTED", filled_quantity=0)
    journal.save_order(earlier)
    every = (await ask(bus, "execution", "summary", m.GetExecutionSummary())).data
    of_day = (await ask(bus, "execution", "summary", m.GetExecutionSummary(day=today))).data
    assert (every["total_orders"], every["rejected"]) == (of_day["total_orders"] + 1, of_day["rejected"] + 1)
    assert of_day["total_orders"] == len(journal.orders(USER, today))

    reply = await ask(bus, "execution", "orders", m.GetOrders())
    assert {buy.id, sell.id} <= {r["signal_id"] for r in reply.data}
