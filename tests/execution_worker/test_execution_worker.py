"""The execution worker against kite_sim and a real nats-server: signals become orders, fills become
journal rows, stop-losses carry the right trigger and limit, groups roll back, the kill switch holds."""

import asyncio

import msgspec

from shared.trading.summary import journal_summary
from shared import messages as m
from shared import subjects
from tests.execution_worker.conftest import make_stack
from tests.execution_worker.kit import USER, broker, signal
from tests.helpers import eventually


async def test_signal_to_orders_fills_stop_loss_and_no_duplicates(bus, sim, stack):
    settings, journal, kite = stack
    sig = signal("sig-entry-1", stop=147000, target=156000)
    await bus.js_publish(subjects.signals(USER), sig, msg_id=sig.id)
    await bus.js.publish(subjects.signals(USER), m.encode(sig))  # a redelivery (no dedupe header)
    rows = await eventually(lambda: [r for r in journal.orders_of_signal(sig.id) if r.get("order_id")] if
                            sum(bool(r.get("order_id")) for r in journal.orders_of_signal(sig.id)) == 2 else None,
                            what="entry and its stop-loss")
    by_kind = {r["kind"]: r for r in rows}
    assert by_kind["entry"]["status"] == "COMPLETE" and by_kind["entry"]["filled_quantity"] == 2
    sl = by_kind["stop_loss"]  # one exit order at the broker: the target is watched, not placed
    assert (sl["order_type"], sl["transaction_type"], sl["trigger_price"], sl["quantity"]) == ("SL", "SELL", 147000, 2)
    assert sl["price"] == 147000 - int(147000 * settings.sl_slippage_pct / 100) // 5 * 5  # trigger − slippage, tick
    trades = journal.trades(USER)
    assert sum(t["quantity"] for t in trades if t["order_id"] == by_kind["entry"]["order_id"]) == 2
    at_broker = [o for o in await broker(kite.orders) if o.tag and o.tag == by_kind["entry"]["tag"]]
    assert len(at_broker) == 1  # placed once, although the signal came twice
    # the journal and the order events carry the exchange's clock, as the trader's screen shows it
    assert by_kind["entry"]["order_timestamp"] == at_broker[0].order_timestamp != ""
    last_event = msgspec.json.decode(journal.audit(by_kind["entry"]["order_id"])["orders"][0]["events"][-1]["payload"])
    assert last_event["order_timestamp"] == at_broker[0].order_timestamp
    audit = journal.audit(by_kind["entry"]["order_id"])
    assert audit["signal"]["id"] == sig.id and audit["orders"][0]["trades"] and audit["orders"][0]["events"]

    # exit: the protective orders are cancelled first, then the position is closed
    out = signal("sig-exit-1", side="SELL", intent="exit")
    await bus.js_publish(subjects.signals(USER), out, msg_id=out.id)
    await eventually(lambda: journal.orders_of_signal(out.id) and journal.orders_of_signal(out.id)[0]["status"] ==
                     "COMPLETE", what="exit filled")
    await eventually(lambda: journal.order_by_tag(sl["tag"])["status"] == "CANCELLED", what="SL cancelled")
    exit_id = journal.orders_of_signal(out.id)[0]["order_id"]
    await eventually(lambda: journal.trades_of_order(exit_id), what="the exit's fill journaled")
    mine = [t for t in journal.trades(USER) if t["tradingsymbol"] == "INFY" and t["strategy_id"] == "test-1"]
    assert [(r.symbol, r.qty, r.strategy) for r in journal_summary(mine).trades] == [("INFY", 2, "test-1")]
    infy = mine
    assert sum(t["quantity"] if t["transaction_type"] == "BUY" else -t["quantity"] for t in infy) == 0  # flat


async def test_risk_limit_refuses_with_reason(bus, stack):
    _, journal, _ = stack
    big = signal("sig-too-big", qty=500)
    await bus.js_publish(subjects.signals(USER), big, msg_id=big.id)
    await eventually(lambda: journal.signal_decision(big.id) == "refused", what="refusal")
    assert journal.signal(big.id)["code"] == "POSITION_SIZE"
    assert not journal.orders_of_signal(big.id)


async def test_group_with_a_rejected_leg_rolls_back_flat(bus, sim, stack):
    settings, journal, kite = stack
    instruments = [i for i in await broker(kite.instruments, "NFO") if i.name == "NIFTY" and i.instrument_type in ("CE",)]
    expiry = sorted({i.expiry for i in instruments})[1]  # not an expiring contract: both legs have value
    chain = {i.strike: i for i in instruments if i.expiry == expiry}
    short, wing = chain[26000.0], chain[26200.0]

    def leg(i, side, hedge):
        return m.Leg(exchange=m.Exchange.NFO, tradingsymbol=i.tradingsymbol, instrument_token=i.instrument_token,
                     transaction_type=m.TransactionType(side), quantity=i.lot_size, lot_size=i.lot_size,
                     order_type=m.OrderType.MARKET, is_hedge=hedge, option_type="CE", strike=int(i.strike * 100),
                     expiry=expiry.isoformat())

    group = m.SignalGroup(id="grp-1", user_id=USER, strategy_id="spread-1", strategy="bear_call_spread",
                          structure="bear_call_spread", underlying="NIFTY",
                          legs=[leg(short, "SELL", False), leg(wing, "BUY", True)])
    # the hedge (bought first) fills; the short leg is rejected by the RMS. The hedge rests unfilled
    # until the reject is armed, so the reject cannot hit it
    sim.faults(reject_next=0, hold_fills=True)
    outcomes = []

    async def on_outcome(out, msg):
        if out.kind == "rolled_back":
            outcomes.append(out)

    await bus.subscribe(subjects.outcomes(USER), m.StrategyOutcome, on_outcome)
    before = {p.tradingsymbol: p.quantity for p in (await broker(kite.positions)).net}
    await bus.js_publish(subjects.signals(USER), group, msg_id=group.id)
    await eventually(lambda: any(r.get("order_id") for r in journal.orders_of_group(group.id)),
                     what="first leg placed")
    sim.faults(reject_next=1, reject_reason="RMS:Margin Exceeds", hold_fills=False)
    state = await eventually(lambda: (journal.group(group.id) or {}).get("state") in
                             ("rolled_back", "needs_attention", "completed") and journal.group(group.id)["state"],
                             timeout=30, what="group finished")
    assert state == "rolled_back", journal.group(group.id)
    ended = await eventually(lambda: len(outcomes) == 2 and outcomes, what="each leg's rolled_back outcome")
    assert {(o.tradingsymbol, o.position, o.group_id) for o in ended} == {
        (short.tradingsymbol, 0, group.id), (wing.tradingsymbol, 0, group.id)}
    after = {p.tradingsymbol: p.quantity for p in (await broker(kite.positions)).net}
    assert after.get(wing.tradingsymbol, 0) == before.get(wing.tradingsymbol, 0)
    assert after.get(short.tradingsymbol, 0) == before.get(short.tradingsymbol, 0)
    kinds = [r["kind"] for r in journal.orders_of_group(group.id)]
    assert kinds.count("rollback") == 1


async def test_kill_switch_trips_refuses_survives_a_restart_and_resets_only_on_command(bus, sim, data_dir):
    risk_states: asyncio.Queue = asyncio.Queue()

    async def on_risk(state, msg):
        await risk_states.put(state)

    await bus.subscribe(subjects.risk(USER), m.RiskState, on_risk)
    async with make_stack(bus, sim, data_dir) as (settings, journal, kite):
        limits = m.RiskLimits(max_daily_loss=50_00)  # ₹50
        assert isinstance(await bus.request(subjects.cmd(USER, "risk", "limits"), m.SetRiskLimits(limits=limits)),
                          m.Ok)
        entry = signal("sig-ks-entry", qty=10)
        await bus.js_publish(subjects.signals(USER), entry, msg_id=entry.id)
        await eventually(lambda: journal.orders_of_signal(entry.id) and
                         journal.orders_of_signal(entry.id)[0]["status"] == "COMPLETE", what="entry filled")
        sim.admin("price", {"underlying": "INFY", "price": 1480.0})  # -₹200 on 10 shares
        state = await eventually(lambda: risk_states.qsize() and _drain_halted(risk_states), timeout=20,
                                 what="kill switch HALTED")
        assert state.state is m.KillSwitchState.HALTED
    # a new worker on the same data dir, with the price (and so the day's P&L) recovered
    snapshots: asyncio.Queue = asyncio.Queue()

    async def on_positions(snap, msg):
        await snapshots.put(snap)

    await bus.subscribe(subjects.positions(USER), m.PositionSnapshot, on_positions)
    async with make_stack(bus, sim, data_dir, fresh_account=False) as (settings, journal, kite):
        summary = await bus.request(subjects.cmd(USER, "risk", "summary"), m.GetRiskSummary())
        assert summary.data["state"]["state"] == "HALTED"
        late = signal("sig-after-halt", qty=1)
        await bus.js_publish(subjects.signals(USER), late, msg_id=late.id)
        await eventually(lambda: journal.signal_decision(late.id) == "refused", what="refused while halted")
        assert journal.signal(late.id)["code"] == "KILL_SWITCH_HALTED"
        await eventually(lambda: snapshots.qsize() >= 2, what="positions passes of the new worker")
        summary = await bus.request(subjects.cmd(USER, "risk", "summary"), m.GetRiskSummary())
        assert summary.data["state"]["state"] == "HALTED"  # recovered P&L does not un-trip it
        reset = await bus.request(subjects.cmd(USER, "risk", "reset"), m.ResetKillSwitch(reason="test"))
        assert reset.data["state"] == "ACTIVE"
        again = signal("sig-after-reset", qty=1)
        await bus.js_publish(subjects.signals(USER), again, msg_id=again.id)
        await eventually(lambda: journal.signal_decision(again.id) == "accepted", what="accepted after the reset")
        await bus.request(subjects.cmd(USER, "risk", "limits"), m.SetRiskLimits(limits=m.RiskLimits()))


def _drain_halted(q):
    while not q.empty():
        s = q.get_nowait()
        if s.state is m.KillSwitchState.HALTED:
            return s
    return None


async def test_a_malformed_signal_is_dead_lettered_and_the_next_one_goes_on(bus, stack):
    _, journal, _ = stack
    dead: asyncio.Queue = asyncio.Queue()

    async def on_dead(msg):
        await dead.put(msg)

    await bus.nc.subscribe(subjects.dlq("execution"), cb=on_dead)
    await bus.js.publish(subjects.signals(USER), b'{"type": "signal", "id": 42}')
    good = signal("after-garbage-1", qty=1)
    await bus.js_publish(subjects.signals(USER), good, msg_id=good.id)
    await eventually(lambda: journal.signal_decision(good.id) == "accepted", what="the next signal decided")
    msg = await eventually(lambda: not dead.empty() and dead.get_nowait(), what="the dead letter")
    assert msg.headers["Kta-Subject"].startswith(subjects.signals(USER)) and "decode" in msg.headers["Kta-Error"]
