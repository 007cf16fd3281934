"""Every position protected and never margined twice, through the worker and kite_sim: one stop-loss
at the broker for exactly what filled (freeze slices, a partly filled entry), the target watched on
ticks and executed by turning the stop into a limit (the price back at the stop while that limit waits:
the limit moves to the stop's own limit and closes the position), a rejected stop retried once with a corrected
trigger and, rejected again, the position closed and the trader alerted."""

import asyncio
import time

import pytest

from execution_worker import protector, signals
from execution_worker.order_gate import OrderGate
from shared import messages as m
from shared import subjects
from shared.trading.order import OrderState
from shared.trading.protection import Protection
from tests.execution_worker.kit import USER, broker, fresh_desk, nifty_chain, signal
from tests.helpers import eventually

pytestmark = pytest.mark.slow(seconds=15)


def journaled(journal, strategy_id: str, symbol: str = "INFY") -> int:
    return sum(t["quantity"] * (1 if t["transaction_type"] == "BUY" else -1) for t in journal.trades(USER)
               if t["strategy_id"] == strategy_id and t["tradingsymbol"] == symbol)


def stops(journal, strategy_id: str, working: bool = True) -> list[dict]:
    return [r for r in journal.orders(USER) if r["strategy_id"] == strategy_id and r["kind"] == "stop_loss"
            and (not working or r["state"] in ("OPEN", "TRIGGER PENDING", "PLACED", "MODIFIED"))]


async def flatten(bus, journal, strategy_id: str, symbol_sig) -> None:
    held = journaled(journal, strategy_id, symbol_sig.tradingsymbol)
    if held:
        out = m.Signal(**{**{f: getattr(symbol_sig, f) for f in symbol_sig.__struct_fields__},
                          "id": f"{strategy_id}-out-{time.time_ns()}", "intent": "exit", "quantity": abs(held),
                          "stop_loss": None, "target": None,
                          "transaction_type": m.TransactionType.SELL if held > 0 else m.TransactionType.BUY})
        await bus.js_publish(subjects.signals(USER), out, msg_id=out.id)
        await eventually(lambda: journaled(journal, strategy_id, symbol_sig.tradingsymbol) == 0, what="flat again")
    await eventually(lambda: not stops(journal, strategy_id), what="no stop left working")


async def test_a_sliced_entry_is_protected_for_its_whole_quantity(bus, stack):
    _, journal, kite = stack
    calls = await nifty_chain(kite, "CE")
    opt = calls[26400.0]
    ltp = (await broker(kite.ltp, f"NFO:{opt.tradingsymbol}"))[f"NFO:{opt.tradingsymbol}"].last_price
    limits = m.RiskLimits(max_position_lots=50)
    assert isinstance(await bus.request(subjects.cmd(USER, "risk", "limits"), m.SetRiskLimits(limits=limits)), m.Ok)
    sig = m.Signal(id="protect-sliced-1", user_id=USER, strategy_id="prot-1", strategy="manual",
                   exchange=m.Exchange.NFO, tradingsymbol=opt.tradingsymbol, instrument_token=opt.instrument_token,
                   transaction_type=m.TransactionType.BUY, quantity=1820, product=m.Product.MIS,  # NRML: a GTT each
                   # slice (tests/execution_worker/test_gtt.py)
                   order_type=m.OrderType.MARKET, stop_loss=m.to_paise(round(ltp * 0.8, 1)), created_at=time.time_ns())
    try:
        await bus.js_publish(subjects.signals(USER), sig, msg_id=sig.id)
        await eventually(lambda: journal.signal_decision(sig.id), what="the decision")
        assert journal.signal_decision(sig.id) == "accepted", journal.signal(sig.id)
        await eventually(lambda: journaled(journal, "prot-1", opt.tradingsymbol) == 1820, timeout=30,
                         what="1,820 filled in slices")
        placed = await eventually(lambda: (s := stops(journal, "prot-1")) and sum(r["quantity"] for r in s) == 1820
                                  and s, timeout=30, what="the stop for all of it")
        assert sorted(r["quantity"] for r in placed) == [65, 1755]  # freeze-sliced like the entry
        assert all(r["transaction_type"] == "SELL" and r["order_type"] == "SL" and r["trigger_price"] == sig.stop_loss
                   for r in placed)
    finally:
        await flatten(bus, journal, "prot-1", sig)
        await bus.request(subjects.cmd(USER, "risk", "limits"), m.SetRiskLimits(limits=m.RiskLimits()))


async def test_a_partly_filled_then_cancelled_entry_gets_its_stop(bus, sim, stack):
    _, journal, _ = stack
    sim.faults(partial_then_cancel_next=1)
    sig = signal("protect-partial-1", qty=40, stop=147000, target=156000, strategy_id="prot-2")
    try:
        await bus.js_publish(subjects.signals(USER), sig, msg_id=sig.id)
        entry = await eventually(lambda: (r := journal.orders_of_signal(sig.id)) and r[0]["status"] == "CANCELLED"
                                 and r[0], what="the entry partly filled, the rest cancelled")
        assert 0 < entry["filled_quantity"] < 40
        await eventually(lambda: journaled(journal, "prot-2") == entry["filled_quantity"], what="its fills journaled")
        (stop,) = await eventually(lambda: stops(journal, "prot-2"), what="the stop")
        assert (stop["quantity"], stop["trigger_price"]) == (entry["filled_quantity"], 147000)
    finally:
        await flatten(bus, journal, "prot-2", sig)


async def test_the_target_turns_the_stop_into_a_limit_that_closes_the_position(bus, sim, stack):
    _, journal, _ = stack
    sig = signal("protect-target-1", qty=5, stop=147000, target=152000, strategy_id="prot-3")
    try:
        await bus.js_publish(subjects.signals(USER), sig, msg_id=sig.id)
        (stop,) = await eventually(lambda: stops(journal, "prot-3"), what="the stop")
        assert not [r for r in journal.orders(USER) if r["strategy_id"] == "prot-3" and r["kind"] == "target"]
        sim.admin("price", {"underlying": "INFY", "price": 1530.0})
        tick = m.Tick(instrument_token=408065, mode="full", tradable=True, last_price=1530.0, received_at=time.time_ns())
        await eventually(lambda: journaled(journal, "prot-3") == 5, what="the entry's fills")

        async def ticked_out():
            await bus.publish(subjects.ticks(408065), tick)
            return journaled(journal, "prot-3") == 0

        await eventually(ticked_out, what="the target reached and the position closed")
        done = journal.order_by_tag(stop["tag"])
        assert (done["status"], done["order_type"], done["price"]) == ("COMPLETE", "LIMIT", 152000)
        assert len([r for r in journal.orders(USER) if r["strategy_id"] == "prot-3"]) == 2  # entry + its one exit
    finally:
        sim.admin("price", {"underlying": "INFY", "price": 1500.0})
        await flatten(bus, journal, "prot-3", sig)


async def test_back_at_the_stop_while_the_target_limit_waits_the_stop_closes_it(bus, sim, stack):
    _, journal, _ = stack
    sig = signal("protect-back-1", qty=5, stop=147000, target=152000, strategy_id="prot-6")

    def tick(price: float):
        return m.Tick(instrument_token=408065, mode="full", tradable=True, last_price=price, received_at=time.time_ns())

    try:
        await bus.js_publish(subjects.signals(USER), sig, msg_id=sig.id)
        (stop,) = await eventually(lambda: stops(journal, "prot-6"), what="the stop")
        await eventually(lambda: journaled(journal, "prot-6") == 5, what="the entry's fills")

        async def waits_at_the_target():  # a trade at the target; the market (the sim near 1500) not through it
            await bus.publish(subjects.ticks(408065), tick(1520.0))
            row = journal.order_by_tag(stop["tag"])
            return (row["order_type"], row["price"], row["status"]) == ("LIMIT", 152000, "OPEN")

        await eventually(waits_at_the_target, what="the stop turned into a limit waiting at the target")
        sim.admin("price", {"underlying": "INFY", "price": 1468.0})

        async def stopped_out():
            await bus.publish(subjects.ticks(408065), tick(1468.0))
            return journaled(journal, "prot-6") == 0

        await eventually(stopped_out, what="back at the stop: the position closed")
        done = journal.order_by_tag(stop["tag"])
        assert (done["status"], done["order_type"], done["price"]) == ("COMPLETE", "LIMIT", 146265)  # the stop's limit
        assert done["average_price"] <= 147000  # at the stop, not at the target
        assert len([r for r in journal.orders(USER) if r["strategy_id"] == "prot-6"]) == 2  # entry + its one exit
        assert [p.mode for p in journal.protections(USER) if p.strategy_id == "prot-6"] == ["stopped"]
    finally:
        sim.admin("price", {"underlying": "INFY", "price": 1500.0})
        await flatten(bus, journal, "prot-6", sig)


async def entry_whose_stops_are_rejected(bus, sim, journal, sid: str, strategy_id: str, rejects: int) -> m.Signal:
    sig = signal(sid, qty=3, stop=147000, strategy_id=strategy_id)
    sim.faults(hold_fills=True)  # the entry rests until the rejects are armed for what follows it
    await bus.js_publish(subjects.signals(USER), sig, msg_id=sig.id)
    await eventually(lambda: any(r["order_id"] for r in journal.orders_of_signal(sig.id)), what="the entry placed")
    sim.faults(hold_fills=False, reject_next=rejects, reject_reason="RMS:Trigger price is invalid")
    return sig


async def test_a_rejected_stop_is_retried_once_with_a_corrected_trigger(bus, sim, stack):
    _, journal, _ = stack
    sig = await entry_whose_stops_are_rejected(bus, sim, journal, "protect-retry-1", "prot-4", 1)
    try:
        def retried():
            rejected = [r for r in stops(journal, "prot-4", working=False) if r["status"] == "REJECTED"]
            return rejected and stops(journal, "prot-4") and (rejected, stops(journal, "prot-4"))

        rejected, (stop,) = await eventually(retried, what="one stop rejected, the second working")
        assert len(rejected) == 1 and stop["tag"] != rejected[0]["tag"] and stop["quantity"] == 3
        assert 0 < stop["trigger_price"] <= 147000
    finally:
        sim.reset_faults()
        await flatten(bus, journal, "prot-4", sig)


async def test_a_rejected_stop_is_corrected_from_the_price_now_not_the_one_cached_at_the_entry(bus, sim, stack):
    """The entry's judgement read INFY at 1,500 (cached for the next signals); the price falls through the
    stop (1,470) before the entry fills, so the stop is rejected (a SELL trigger above the last price). The
    corrected trigger comes from the broker's price now (1,450), not that cached 1,500 (a trigger of 1,470
    again: rejected twice, the position flattened)."""
    _, journal, _ = stack
    alerts: list[m.Alert] = []

    async def on_alert(a, msg):
        alerts.append(a)

    await bus.subscribe(subjects.alerts(USER), m.Alert, on_alert)
    sig = signal("protect-fresh-1", qty=3, stop=147000, strategy_id="prot-7")
    sim.faults(hold_fills=True)  # the entry rests while the price falls through its stop
    await bus.js_publish(subjects.signals(USER), sig, msg_id=sig.id)
    try:
        await eventually(lambda: any(r["order_id"] for r in journal.orders_of_signal(sig.id)), what="the entry placed")
        sim.admin("price", {"underlying": "INFY", "price": 1450.0})
        sim.faults(hold_fills=False)
        await eventually(lambda: journaled(journal, "prot-7") == 3, what="the entry filled")

        def retried():
            rejected = [r for r in stops(journal, "prot-7", working=False) if r["status"] == "REJECTED"]
            return rejected and stops(journal, "prot-7") and (rejected, stops(journal, "prot-7"))

        rejected, (stop,) = await eventually(retried, what="the stop rejected, the corrected one working")
        assert len(rejected) == 1 and "lower than the last traded price" in rejected[0]["status_message"]
        assert 0 < stop["trigger_price"] < 145000 and stop["quantity"] == 3  # below the price now
        assert journaled(journal, "prot-7") == 3 and not [a for a in alerts if a.kind == "unprotected"]
        assert "flatten" not in [r["kind"] for r in journal.orders(USER) if r["strategy_id"] == "prot-7"]
    finally:
        sim.reset_faults()
        sim.admin("price", {"underlying": "INFY", "price": 1500.0})
        await flatten(bus, journal, "prot-7", sig)


async def test_a_stop_rejected_twice_closes_the_position_and_alerts(bus, sim, stack):
    _, journal, _ = stack
    alerts: list[m.Alert] = []

    async def on_alert(a, msg):
        alerts.append(a)

    await bus.subscribe(subjects.alerts(USER), m.Alert, on_alert)
    sig = await entry_whose_stops_are_rejected(bus, sim, journal, "protect-fail-1", "prot-5", 2)
    try:
        await eventually(lambda: journaled(journal, "prot-5") == 3, what="the entry filled")
        await eventually(lambda: journaled(journal, "prot-5") == 0, timeout=30, what="the position closed")
        assert [r["status"] for r in stops(journal, "prot-5", working=False)] == ["REJECTED", "REJECTED"]
        assert [r["kind"] for r in journal.orders(USER) if r["strategy_id"] == "prot-5"].count("flatten") == 1
        alert = await eventually(lambda: [a for a in alerts if a.kind == "unprotected"], what="the alert")
        assert alert[0].severity == "critical" and "INFY" in alert[0].title
    finally:
        sim.reset_faults()
        await flatten(bus, journal, "prot-5", sig)


async def test_a_stop_rejected_while_its_placement_is_recorded_is_retried_and_holds_nothing_up(bus, sim, data_dir):
    """The CI run on 98082f9: after a restart, the first pass placed a stop the broker rejected at once. Its
    WebSocket REJECTED was applied while the placing task — holding the position's protection lock — was still
    publishing the order's PLACED; that publish's reaction read the order's live state (REJECTED) and waited for
    the lock its own task held. The pass never ended (no more reconciliation), the order-update handler waiting
    for the same lock wedged the user's update feed, and positions filled after it got no stop. The interleaving
    is pinned here: order events wait at the desk's ``order_changed`` while the broker's REJECTED is applied as
    the update handler applies it. The pass ends, the stop is retried once with a corrected trigger."""
    desk, kite, journal = fresh_desk(sim, bus, data_dir)
    try:
        journal.save_protection(Protection(user_id=USER, strategy_id="race-1", exchange="NSE", tradingsymbol="INFY",
                                           instrument_token=408065, product="MIS", stop=147000))
        desk.tracker.on_fill(strategy_id="race-1", exchange="NSE", tradingsymbol="INFY", transaction_type="BUY",
                             quantity=3, price=150000, instrument_token=408065, product="MIS")
        protector.started(desk, 0.5)  # a restarted worker: the position and its plan from the journal, no stop yet
        sim.faults(reject_next=1, reject_reason="RMS:Blocked for trading: risk check")
        async with desk.order_changed:  # the placing task's publish of PLACED waits here
            passing = asyncio.ensure_future(desk.protector.sync_all())
            (placed,) = await eventually(lambda: [r for r in stops(journal, "race-1") if r["order_id"]],
                                         what="the stop placed, its PLACED not yet published")
            (view,) = [o for o in await broker(kite.orders) if o.order_id == placed["order_id"]]
            assert view.status == "REJECTED"
            relayed = asyncio.ensure_future(desk.on_broker(view))  # what the order-update handler does with it
            await eventually(lambda: desk.book.by_order_id(view.order_id).state is OrderState.REJECTED,
                             what="the broker's REJECTED applied")
        done, _ = await asyncio.wait([passing, relayed], timeout=10)
        assert passing in done, "the protection pass never ended (it waited for a lock its own task held)"
        assert relayed in done, "the order update was never handled (the user's update feed stopped)"
        (stop,) = await eventually(lambda: stops(journal, "race-1"), what="the corrected stop working")
        assert stop["tag"] != placed["tag"] and stop["quantity"] == 3 and 0 < stop["trigger_price"] <= 147000
        (saved,) = [p for p in journal.protections(USER) if p.strategy_id == "race-1"]
        assert saved.retried and saved.mode != "failed"
    finally:
        sim.reset_faults()
        await kite.aclose()


async def test_the_order_update_feed_never_waits_for_a_stop_to_reach_the_broker(bus, sim, data_dir):
    """A user's order updates are handled one after the other. A fill's stop used to be placed inside that
    handling, so every later update — the next entry's fill, its stop — waited for the broker's answer (under a
    400 ms broker latency with overlapping sends, soak seed 7 saw stops 10 s late). Here the order gate holds the
    first stop (its window full until the test opens it): the next fill is journaled meanwhile, and both stops go
    out once the gate opens."""
    desk, kite, journal = fresh_desk(sim, bus, data_dir)
    opened = asyncio.Event()

    async def gate_wait(seconds: float) -> None:  # the gate's window frees when the test says so
        await opened.wait()

    # the gate's clock stands still until the test opens it, then moves past the full window
    desk.gate = OrderGate(per_second=2, clock=lambda: 1_000.0 + 2.0 * opened.is_set(), sleep=gate_wait)
    protector.started(desk, 0.5)
    desk.ws_heard = time.monotonic()  # the ticker relays this user's updates: confirm() waits for them
    relay = None
    try:
        sim.faults(hold_fills=True)
        entries = [signal(f"feed-{i}-{time.time_ns()}", qty=2, stop=147000, strategy_id=f"feed-{i}") for i in (1, 2)]
        for sig in entries:  # two entries: the gate's window (2 a second) is full
            await signals.on_signal(desk, sig)
        ids = [r["order_id"] for sig in entries for r in journal.orders_of_signal(sig.id)]
        sim.faults(hold_fills=False)
        views = await eventually(lambda: _completed(kite, ids), what="both entries filled at the broker")

        async def feed():  # the order-update handler: one update after the other
            for view in views:
                await desk.on_broker(view)

        relay = asyncio.ensure_future(feed())
        # well inside confirm()'s 10-s fallback read-back: these fills can only come from the feed
        await eventually(lambda: all(journal.trades_of_order(i) for i in ids), timeout=5,
                         what="the second fill journaled while the first one's stop waits at the gate")
        assert not stops(journal, "feed-1") and not stops(journal, "feed-2")  # the gate still holds them
        opened.set()
        await eventually(lambda: stops(journal, "feed-1") and stops(journal, "feed-2"), what="both stops placed")
        assert [s["quantity"] for s in stops(journal, "feed-1") + stops(journal, "feed-2")] == [2, 2]
    finally:
        opened.set()
        if relay is not None:
            await relay
        sim.reset_faults()
        await kite.aclose()


async def _completed(kite, ids: list[str]) -> list | None:
    views = {o.order_id: o for o in await broker(kite.orders) if o.order_id in ids}
    return [views[i] for i in ids] if all(i in views and views[i].status == "COMPLETE" for i in ids) else None


async def test_a_stop_failing_twice_while_a_square_off_holds_the_position_is_closed_once(bus, sim, data_dir):
    """tests/system: the kill switch's square-off and the protector each flattened a position whose stop was
    rejected a second time meanwhile (WIPRO +12 -> -12). While an exit or a square-off holds a position's
    protection back, a stop failing twice leaves the closing to it; the position is flattened by the next sync only
    if it is still open when the hold ends — once."""
    desk, kite, journal = fresh_desk(sim, bus, data_dir)
    key = "race-2|NSE:INFY"
    alerts: list[m.Alert] = []

    async def on_alert(a, msg):
        alerts.append(a)

    await bus.subscribe(subjects.alerts(USER), m.Alert, on_alert)
    try:
        journal.save_protection(Protection(user_id=USER, strategy_id="race-2", exchange="NSE", tradingsymbol="INFY",
                                           instrument_token=408065, product="MIS", stop=147000, retried=True))
        desk.tracker.on_fill(strategy_id="race-2", exchange="NSE", tradingsymbol="INFY", transaction_type="BUY",
                             quantity=3, price=150000, instrument_token=408065, product="MIS")
        protector.started(desk, 0.5)  # the first rejection already retried: the next one fails the stop
        sim.faults(reject_next=1, reject_reason="RMS:Blocked for trading: risk check")
        hold = desk.protector.holding([key])
        async with desk.order_changed:  # the stop's PLACED waits here while the position is taken in hand
            passing = asyncio.ensure_future(desk.protector.sync(key))
            (placed,) = await eventually(lambda: [r for r in stops(journal, "race-2") if r["order_id"]],
                                         what="the stop placed")
            (view,) = [o for o in await broker(kite.orders) if o.order_id == placed["order_id"]]
            relayed = asyncio.ensure_future(desk.on_broker(view))  # its REJECTED, as the update handler applies it
            await eventually(lambda: desk.book.by_order_id(view.order_id).state is OrderState.REJECTED,
                             what="the broker's REJECTED applied")
            await hold.__aenter__()  # a square-off (or an exit) holds the position from now on
        await asyncio.wait_for(asyncio.gather(passing, relayed), 10)
        # the alert is raised before the flatten would be placed (no await between the two once it is sent)
        await eventually(lambda: [a for a in alerts if a.kind == "unprotected" and "INFY" in a.title],
                         what="the stop failed twice: the trader alerted")
        assert [p.mode for p in journal.protections(USER) if p.strategy_id == "race-2"] == ["failed"]

        def flattens() -> list[dict]:
            return [r for r in journal.orders(USER) if r["strategy_id"] == "race-2" and r["kind"] == "flatten"]

        assert not flattens()  # left to whoever holds the position
        await hold.__aexit__(None, None, None)  # it ended and left the position open: closed now, once
        await eventually(lambda: desk.tracker.held("race-2", "NSE", "INFY")[0] == 0, what="flattened")
        assert len(flattens()) == 1 and flattens()[0]["quantity"] == 3
    finally:
        sim.reset_faults()
        await kite.aclose()
