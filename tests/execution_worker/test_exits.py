"""Exits through the real stack are judged from the book: an exit of nothing opens nothing, a larger
exit closes exactly the position, a stop on the wrong side of the price never reaches the broker."""

from shared import subjects
from tests.execution_worker.kit import USER, broker, signal
from tests.helpers import eventually


async def test_an_exit_on_a_flat_book_is_refused_and_a_larger_one_is_clamped(bus, sim, stack):
    _, journal, kite = stack
    ghost = signal("exit-nothing-1", side="SELL", qty=150, intent="exit", strategy_id="exits-1")
    await bus.js_publish(subjects.signals(USER), ghost, msg_id=ghost.id)
    await eventually(lambda: journal.signal_decision(ghost.id) == "refused", what="the exit of nothing refused")
    assert journal.signal(ghost.id)["code"] == "NO_POSITION" and not journal.orders_of_signal(ghost.id)

    entry = signal("exit-entry-1", qty=4, strategy_id="exits-1")
    await bus.js_publish(subjects.signals(USER), entry, msg_id=entry.id)
    await eventually(lambda: sum(t["quantity"] for t in journal.trades(USER) if t["signal_id"] == entry.id) == 4,
                     what="the entry filled")
    big = signal("exit-big-1", side="SELL", qty=150, intent="exit", strategy_id="exits-1")
    await bus.js_publish(subjects.signals(USER), big, msg_id=big.id)
    rows = await eventually(lambda: [r for r in journal.orders_of_signal(big.id) if r["status"] == "COMPLETE"],
                            what="the clamped exit filled")
    assert [r["quantity"] for r in rows] == [4] and "clamped" in journal.signal(big.id)["reason"]
    at_broker = [o for o in await broker(kite.orders) if o.tag == rows[0]["tag"]]
    assert [o.quantity for o in at_broker] == [4]
    await eventually(lambda: sum(t["quantity"] * (1 if t["transaction_type"] == "BUY" else -1)
                                 for t in journal.trades(USER) if t["strategy_id"] == "exits-1") == 0,
                     what="the strategy flat, not short")


async def test_a_stop_on_the_wrong_side_of_the_price_is_refused_at_risk(bus, stack):
    _, journal, _ = stack
    wrong = signal("stop-wrong-1", qty=1, stop=160000, target=170000, strategy_id="exits-2")  # INFY at ₹1,500
    negative = signal("stop-negative-1", qty=1, stop=-94885, target=156000, strategy_id="exits-2")
    for sig in (wrong, negative):
        await bus.js_publish(subjects.signals(USER), sig, msg_id=sig.id)
    await eventually(lambda: all(journal.signal_decision(s.id) == "refused" for s in (wrong, negative)),
                     what="both refused")
    assert journal.signal(wrong.id)["code"] == journal.signal(negative.id)["code"] == "INVALID_STOP"
    assert not journal.orders_of_signal(wrong.id) and not journal.orders_of_signal(negative.id)
