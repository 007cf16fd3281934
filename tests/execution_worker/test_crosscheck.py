"""The broker's positions against kta's, every positions pass: a trade placed in Kite by hand that closes
a strategy's position is adopted as an external fill of that strategy (journaled, a risk event, its
outcome with position 0), and one that opens a position belongs to the account, never to a strategy."""

from shared import messages as m
from shared import subjects
from tests.execution_worker.kit import USER, broker, signal
from tests.helpers import eventually


def held(journal, strategy_id: str, symbol: str = "INFY") -> int:
    return sum(t["quantity"] * (1 if t["transaction_type"] == "BUY" else -1) for t in journal.trades(USER)
               if t["strategy_id"] == strategy_id and t["tradingsymbol"] == symbol)


async def test_trades_placed_in_kite_are_adopted_as_external_fills(bus, sim, stack):
    _, journal, kite = stack
    outcomes: list[m.StrategyOutcome] = []

    async def on_outcome(out, msg):
        outcomes.append(out)

    await bus.subscribe(subjects.outcomes(USER), m.StrategyOutcome, on_outcome)

    entry = signal("ext-entry-1", qty=4, strategy_id="ext-1", stop=140000)
    await bus.js_publish(subjects.signals(USER), entry, msg_id=entry.id)
    await eventually(lambda: held(journal, "ext-1") == 4, what="the strategy holds 4")
    await eventually(lambda: working_stops(journal, "ext-1"), what="its stop at the broker")
    await broker(kite.place_order, "regular", "NSE", "INFY", "SELL", 4, "MIS", "MARKET", market_protection=-1,
                 tag="byhand1")  # the trader closes it in Kite
    await eventually(lambda: held(journal, "ext-1") == 0, timeout=30, what="the close adopted for the strategy")
    (ext,) = await eventually(lambda: [o for o in outcomes if o.kind == "external" and o.strategy_id == "ext-1"],
                              what="the strategy told")
    assert (ext.position, ext.quantity, ext.transaction_type, ext.order_kind) == (0, 4, "SELL", "external")
    assert "outside kta" in ext.reason and ext.price > 0
    assert any(e["code"] == "EXTERNAL_FILL" and "ext-1" in e["message"] for e in journal.risk_events(USER))
    # nothing left to protect: the stop goes (left standing, it would sell 4 the account no longer holds)
    await eventually(lambda: not working_stops(journal, "ext-1"), what="the stop cancelled")

    await broker(kite.place_order, "regular", "NSE", "INFY", "BUY", 3, "MIS", "MARKET", market_protection=-1,
                 tag="byhand2")  # a new position opened in Kite: nobody's strategy
    await eventually(lambda: held(journal, "") == 3, timeout=30, what="adopted for the account")
    assert held(journal, "ext-1") == 0 and not [o for o in outcomes if o.strategy_id == "" ]
    await broker(kite.place_order, "regular", "NSE", "INFY", "SELL", 3, "MIS", "MARKET", market_protection=-1,
                 tag="byhand3")
    await eventually(lambda: held(journal, "") == 0, timeout=30, what="and its close")
    assert sum(p.quantity for p in (await broker(kite.positions)).net if p.tradingsymbol == "INFY") == 0


def working_stops(journal, strategy_id: str) -> list[dict]:
    return [r for r in journal.orders(USER) if r["strategy_id"] == strategy_id and r["kind"] == "stop_loss"
            and r["state"] in ("OPEN", "TRIGGER PENDING", "PLACED", "MODIFIED")]
