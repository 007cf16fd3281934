"""Exits through the real stack are judged from the book: an exit of nothing opens nothing, a larger
exit closes exactly the position, a stop on the wrong side of the price never reaches the broker."""

import time

from shared import subjects
from tests.execution_worker.kit import USER, broker, fresh_desk, signal
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


async def test_an_exit_waits_for_a_stop_that_filled_but_is_not_journaled_yet(bus, sim, data_dir):
    """The broker's word that a position's stop is COMPLETE comes first; its fill is journaled once the
    trade book has been read. An exit arriving in between must not take the position for still held (it
    found no working stop to clear, read 5 and sold them again: soak seed 13, chaos-0 ITC 0 -> -5)."""
    from execution_worker import placing, protector, signals
    from shared.trading.order import broker_update

    desk, kite, journal = fresh_desk(sim, bus, data_dir)
    # the desk hears its orders' updates (this test's records stand for the WebSocket's): no read-back of the
    # stop after its placement (placing.confirm) can journal its fill before the test records the COMPLETE alone
    desk.ws_heard = time.monotonic()
    protector.started(desk, 0.5)
    try:
        entry = signal(f"race-entry-{time.time_ns()}", qty=5, stop=149000, strategy_id="race-1")
        await signals.on_signal(desk, entry)
        (entered,) = desk.book.of_signal(entry.id)
        await placing.wait_final(desk, [entered], 10)
        await desk.protector.sync_all()
        (stop,) = [o for o in desk.book.working_for("race-1", "NSE", "INFY") if o.is_protective]
        assert stop.order_id and desk.tracker.held("race-1", "NSE", "INFY")[0] == 5

        sim.admin("price", {"underlying": "INFY", "price": 1486.0})  # through the stop, above its limit: it fills
        async def stop_filled():
            (k,) = [o for o in await broker(kite.orders) if o.order_id == stop.order_id]
            return k if k.status == "COMPLETE" else None
        done = await eventually(stop_filled, what="the stop filled at the broker")
        await desk.record(stop, broker_update(done, time.time_ns()), notify=False)  # heard; fills not read yet
        assert stop.is_terminal and stop.unjournaled == 5

        out = signal(f"race-exit-{time.time_ns()}", side="SELL", qty=5, intent="exit", strategy_id="race-1")
        await signals.on_signal(desk, out)
        assert desk.tracker.held("race-1", "NSE", "INFY")[0] == 0  # the stop's fill, and nothing sold again
        assert not [o for o in desk.book.of_signal(out.id) if o.order_id]
        assert any(r["key"] == f"cancelled:{out.id}" for r in journal.outcomes(USER))
    finally:
        sim.admin("price", {"underlying": "INFY", "price": None})
        await kite.aclose()
