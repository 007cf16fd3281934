"""The operator's controls through NATS against the worker and kite_sim: the trader's own orders go
through risk and protection (a refusal names the field), can be modified and cancelled (never a
position's stop); Square off all leaves the account flat with nothing working; Halt now keeps the
stops and lets only reductions through; Stop keeps every position protected or squares it off; the
configured limits (KTA_RISK) are a new user's and a change is effective at once."""

import time

import msgspec

from execution_worker import controls, placing, protector, reconcile
from shared import messages as m
from shared import subjects
from shared.trading import planning
from tests.execution_worker.conftest import make_stack
from tests.execution_worker.kit import USER, broker, fresh_desk, nifty_chain, option_leg, signal
from tests.helpers import eventually


async def ask(bus, service: str, cmd, timeout: float = 30.0):
    return await bus.request(subjects.cmd(USER, service, type(cmd).__struct_config__.tag), cmd, timeout=timeout)


def held(journal, strategy_id: str, symbol: str = "INFY") -> int:
    return sum(t["quantity"] * (1 if t["transaction_type"] == "BUY" else -1) for t in journal.trades(USER)
               if t["strategy_id"] == strategy_id and t["tradingsymbol"] == symbol)


def working(journal, strategy_id: str, kind: str | None = None) -> list[dict]:
    return [r for r in journal.open_orders(USER) if r["strategy_id"] == strategy_id and (not kind or r["kind"] == kind)]


def order(qty=2, **kw) -> m.PlaceOrder:
    return m.PlaceOrder(exchange=m.Exchange.NSE, tradingsymbol="INFY", quantity=qty,
                        **{"transaction_type": m.TransactionType.BUY, **kw})


async def test_manual_orders_go_through_risk_and_protection_and_can_be_changed(bus, sim, stack):
    _, journal, kite = stack
    bad = await ask(bus, "execution", order(stop_loss=160000, client_id="bad-stop"))
    assert isinstance(bad, m.Error) and (bad.code, bad.field) == ("INVALID_STOP", "stop_loss")
    unknown = await ask(bus, "execution", m.PlaceOrder(exchange=m.Exchange.NSE, tradingsymbol="NOSUCH",
                                                       transaction_type=m.TransactionType.BUY, quantity=1))
    assert isinstance(unknown, m.Error) and unknown.field == "tradingsymbol"

    placed = await ask(bus, "execution", order(qty=3, stop_loss=147000, client_id="man-1"))
    assert isinstance(placed, m.Ok) and placed.data["orders"][0]["order_id"]
    assert journal.order_by_tag(placed.data["orders"][0]["tag"])["kind"] == "manual"
    await eventually(lambda: held(journal, "manual") == 3, what="the manual entry filled")
    (stop,) = await eventually(lambda: [r for r in working(journal, "manual", "stop_loss") if r["order_id"]],
                               what="its stop at the broker")
    refused = await ask(bus, "execution", m.CancelOrder(tag=stop["tag"]))
    assert isinstance(refused, m.Error) and refused.field == "tag" and "protects" in refused.message
    moved = await ask(bus, "execution", m.ModifyOrder(tag=stop["order_id"], trigger_price=146000, price=145000))
    assert isinstance(moved, m.Ok), moved
    await eventually(lambda: journal.order_by_tag(stop["tag"])["trigger_price"] == 146000, what="the stop moved")
    # as the order book's form moves it: every field sent, only the trigger changed — its limit keeps its distance
    # (before: refused, "a stop-loss covers its position's quantity by itself", for the quantity it already had)
    form = m.ModifyOrder(tag=stop["order_id"], quantity=3, price=145000, trigger_price=145500)
    assert isinstance(moved := await ask(bus, "execution", form), m.Ok), moved
    await eventually(lambda: (journal.order_by_tag(stop["tag"])["trigger_price"],
                              journal.order_by_tag(stop["tag"])["price"]) == (145500, 144500), what="the stop moved")
    bigger = await ask(bus, "execution", m.ModifyOrder(tag=stop["order_id"], quantity=30, trigger_price=145500))
    assert isinstance(bigger, m.Error) and bigger.field == "quantity", bigger
    again = await ask(bus, "execution", order(qty=3, stop_loss=147000, client_id="man-1"))  # a retry: the same order
    assert again.data["orders"] == [{**placed.data["orders"][0], "state": again.data["orders"][0]["state"]}]

    ltp = (await broker(kite.ltp, "NSE:INFY"))["NSE:INFY"].last_price
    resting = await ask(bus, "execution", order(qty=1, order_type=m.OrderType.LIMIT, price=m.to_paise(ltp * 0.9) // 5 * 5,
                                                client_id="man-rest"))
    tag = resting.data["orders"][0]["tag"]
    await eventually(lambda: journal.order_by_tag(tag)["state"] == "OPEN", what="the limit resting")
    assert isinstance(await ask(bus, "execution", m.ModifyOrder(tag=tag, price=m.to_paise(ltp * 0.8) // 5 * 5)), m.Ok)
    assert isinstance(await ask(bus, "execution", m.CancelOrder(tag=tag)), m.Ok)
    row = await eventually(lambda: (r := journal.order_by_tag(tag))["state"] == "CANCELLED" and r, what="cancelled")
    assert row["status_message"] == "cancelled by kta: cancelled by the trader"

    out = await ask(bus, "execution", m.SquareOffAll(reason="test over"))
    assert isinstance(out, m.Ok) and out.data["placed"]
    await eventually(lambda: held(journal, "manual") == 0 and not working(journal, "manual"),
                     what="flat with nothing working")


async def test_halt_now_keeps_the_stops_and_lets_only_reductions_through(bus, stack):
    _, journal, _ = stack
    assert isinstance(await ask(bus, "risk", m.ResetKillSwitch(reason="baseline")), m.Ok)
    entry = await ask(bus, "execution", order(qty=4, stop_loss=147000, strategy_id="halt-1", client_id="halt-e"))
    assert isinstance(entry, m.Ok)
    await eventually(lambda: held(journal, "halt-1") == 4 and working(journal, "halt-1", "stop_loss"),
                     what="entered and protected")
    try:
        halted = await ask(bus, "risk", m.HaltTrading(reason="trader pressed Halt"))
        assert halted.data["state"] == "HALTED" and "trader pressed Halt" in halted.data["reason"]
        more = await ask(bus, "execution", order(qty=1, strategy_id="halt-1", client_id="halt-more"))
        assert isinstance(more, m.Error) and more.code == "KILL_SWITCH_HALTED"
        assert working(journal, "halt-1", "stop_loss")  # the stop stays while HALTED
        out = await ask(bus, "execution", order(qty=10, strategy_id="halt-1", intent="exit", client_id="halt-x",
                                                transaction_type=m.TransactionType.SELL))
        assert isinstance(out, m.Ok) and "clamped" in out.data["reason"]
        await eventually(lambda: held(journal, "halt-1") == 0 and not working(journal, "halt-1"),
                         what="the exit closed it and took its stop")
    finally:
        await ask(bus, "risk", m.ResetKillSwitch(reason="test over"))


async def test_square_off_all_halts_first_and_entries_stay_off_until_the_trader_resets(bus, stack):
    """Square off all is "flat, and stay flat": the kill switch goes HALTED (published and alerted like Halt now)
    before anything is cancelled or closed, so a strategy's entry queued behind it — or sent after it — is refused
    instead of reopening what was just closed; the trader's reset allows entries again."""
    _, journal, _ = stack
    heard: list = []

    async def on_risk(state, msg):
        heard.append(("risk", state))

    async def on_order(ev, msg):
        heard.append(("order", ev))

    async def on_alert(a, msg):
        heard.append(("alert", a))

    for subject, kind, handler in ((subjects.risk(USER), m.RiskState, on_risk), (subjects.orders(USER), m.OrderEvent,
                                   on_order), (subjects.alerts(USER), m.Alert, on_alert)):
        await bus.subscribe(subject, kind, handler)
    await bus.sync()
    assert isinstance(await ask(bus, "execution", order(qty=2, stop_loss=147000, strategy_id="sqa-1",
                                                        client_id="sqa-e")), m.Ok)
    await eventually(lambda: held(journal, "sqa-1") == 2 and working(journal, "sqa-1", "stop_loss"),
                     what="entered and protected")
    del heard[:]
    out = await ask(bus, "execution", m.SquareOffAll(reason="flat for the day"))
    assert isinstance(out, m.Ok) and out.data["placed"] and out.data["kill_switch"] == "HALTED", out
    await eventually(lambda: held(journal, "sqa-1") == 0 and not working(journal, "sqa-1"), what="flat")
    halted = await eventually(lambda: [i for i, (what, x) in enumerate(heard) if what == "risk"
                                       and x.state is m.KillSwitchState.HALTED], what="HALTED published")
    assert heard[halted[0]][1].reason == "square off all: flat for the day"
    closing = [i for i, (what, x) in enumerate(heard) if what == "order" and (x.kind == "flatten" or x.state == "CANCELLED")]
    assert closing and halted[0] < closing[0]  # halted before its first cancel or flatten
    await eventually(lambda: [a for what, a in heard if what == "alert" and a.kind == "kill_switch"], what="alerted")

    sig = signal(f"sqa-next-{time.time_ns()}", qty=2, strategy_id="sqa-1")  # a strategy's next entry
    await bus.js_publish(subjects.signals(USER), sig, msg_id=sig.id)
    refused = await eventually(lambda: journal.signal(sig.id), what="the next entry decided")
    assert (refused["decision"], refused["code"]) == ("refused", "KILL_SWITCH_HALTED"), refused
    assert (await ask(bus, "risk", m.ResetKillSwitch(reason="trading again"))).data["state"] == "ACTIVE"
    again = await ask(bus, "execution", order(qty=2, strategy_id="sqa-1", client_id="sqa-again"))
    assert isinstance(again, m.Ok), again
    await eventually(lambda: held(journal, "sqa-1") == 2, what="trading again after the reset")
    await ask(bus, "execution", m.SquareOffAll(reason="test over"))
    await eventually(lambda: held(journal, "sqa-1") == 0, what="flat")


async def test_stop_keeps_positions_protected_or_squares_them_off(bus, stack):
    _, journal, _ = stack
    bare = await ask(bus, "execution", order(qty=2, strategy_id="stop-1", client_id="stop-bare"))  # no stop of its own
    assert isinstance(bare, m.Ok)
    await eventually(lambda: held(journal, "stop-1") == 2, what="an unprotected position")
    assert not working(journal, "stop-1", "stop_loss")
    stopped = await ask(bus, "live", m.StopLive())
    assert isinstance(stopped, m.Ok) and stopped.data["positions_mode"] == "protect"
    (kept,) = [p for p in stopped.data["protected"] if p["strategy_id"] == "stop-1"]
    (stop,) = await eventually(lambda: working(journal, "stop-1", "stop_loss"), what="a stop for it")
    assert stop["trigger_price"] == kept["stop"] and 0 < kept["stop"] < 150000 and stop["quantity"] == 2
    squared = await ask(bus, "live", m.StopLive(positions="square_off"))
    assert isinstance(squared, m.Ok) and squared.data["square_off"]["placed"]
    await eventually(lambda: held(journal, "stop-1") == 0 and not working(journal, "stop-1"),
                     what="squared off, nothing left working")


async def test_configured_limits_are_a_new_users_and_a_change_is_effective_at_once(bus, sim, data_dir):
    configured = m.RiskLimits(max_daily_loss=30_00, max_position_qty=5)
    async with make_stack(bus, sim, data_dir, risk=configured) as (settings, journal, kite):
        shown = await ask(bus, "risk", m.GetRiskLimits())
        assert shown.data["limits"] == msgspec.to_builtins(configured) and not shown.data["custom"]
        summary = await ask(bus, "risk", m.GetRiskSummary())
        assert summary.data["max_daily_loss"] == 30_00  # ₹30, not the built-in ₹50,000
        too_big = await ask(bus, "execution", order(qty=6, strategy_id="lim-1", client_id="lim-big"))
        assert isinstance(too_big, m.Error) and (too_big.code, too_big.field) == ("POSITION_SIZE", "quantity")
        raised = msgspec.structs.replace(configured, max_position_qty=10)
        assert isinstance(await ask(bus, "risk", m.SetRiskLimits(limits=raised)), m.Ok)
        fits = await ask(bus, "execution", order(qty=6, strategy_id="lim-1", client_id="lim-fits"))
        assert isinstance(fits, m.Ok), fits
        mine = await ask(bus, "risk", m.GetRiskLimits())
        assert mine.data["custom"] and mine.data["limits"]["max_position_qty"] == 10
        assert any(e["code"] == "RISK_LIMITS_CHANGED" for e in journal.risk_events(USER))
        await eventually(lambda: held(journal, "lim-1") == 6, what="filled")
        await ask(bus, "execution", m.SquareOffAll(reason="test over"))
        await eventually(lambda: held(journal, "lim-1") == 0, what="flat")


async def test_square_off_cancels_what_the_broker_still_works_whatever_kta_believes(bus, sim, data_dir):
    """The square-off goes by the broker's book too: a kta stop the desk wrongly holds final (its
    expiry inferred from two reads that did not list it) and a kta order the desk never journaled (a
    crash between the POST and its answer) are cancelled with the rest — nothing of kta's works on."""
    desk, kite, journal = fresh_desk(sim, bus, data_dir)
    protector.started(desk, 0.5)

    def stop(origin: str) -> m.OrderRequest:
        return m.OrderRequest(user_id=USER, exchange=m.Exchange.NSE, tradingsymbol="INFY", instrument_token=408065,
                              transaction_type=m.TransactionType.SELL, order_type=m.OrderType.SL, quantity=1,
                              product=m.Product.MIS, price=1390_00, trigger_price=1400_00, kind="stop_loss",
                              tag=planning.make_tag(f"{origin}-{time.time_ns()}", "stop_loss"))

    believed_final = stop("believed-final")
    order_id = await placing.place(desk, believed_final)
    gone = [x for x in await broker(kite.orders) if x.order_id != order_id]
    for _ in range(2):  # kta wrongly concludes it expired
        await reconcile.fold(desk, gone, {order_id}, time.monotonic())
    assert desk.book.get(believed_final.tag).state == "CANCELLED"
    unknown = stop("never-journaled")
    await broker(kite.place_order, "regular", "NSE", "INFY", "SELL", 1, "MIS", "SL", price=1390.0,
                 trigger_price=1400.0, tag=unknown.tag)
    try:
        await controls.square_off(desk, "test: square off")

        async def none_working():
            book = await broker(kite.orders)
            return not [x for x in book if x.tag in (believed_final.tag, unknown.tag)
                        and x.status not in ("CANCELLED", "COMPLETE", "REJECTED")] or None

        await eventually(none_working, what="kta's orders at the broker cancelled")
        assert journal.order_by_tag(unknown.tag)["cancel_reason"] == "test: square off"
    finally:
        for x in await broker(kite.orders):
            if x.tag in (believed_final.tag, unknown.tag) and x.status == "TRIGGER PENDING":
                await broker(kite.cancel_order, "regular", x.order_id)
        await kite.aclose()


async def test_a_manual_stop_order_waits_for_its_trigger_and_its_fill_is_protected(bus, sim, stack):
    """An SL-M / SL entry: its trigger judged against the side and the last price as Kite's RMS does (the
    refusal names ``trigger_price``), it waits TRIGGER PENDING, its trigger moves, and once the market
    reaches it the fill is protected like any entry's. INFY is pinned at ₹1,500."""
    _, journal, _ = stack
    cases = [(order(order_type=m.OrderType.SL_M, client_id="slm-none"), "bad_request", "trigger_price"),
             (order(order_type=m.OrderType.SL_M, trigger_price=149000, client_id="slm-below"), "INVALID_TRIGGER",
              "trigger_price"),
             (order(order_type=m.OrderType.SL_M, transaction_type=m.TransactionType.SELL, trigger_price=151000,
                    client_id="slm-sell-above"), "INVALID_TRIGGER", "trigger_price"),
             (order(order_type=m.OrderType.SL, trigger_price=151000, price=150500, client_id="sl-limit-below"),
              "INVALID_TRIGGER", "trigger_price"),
             (order(order_type=m.OrderType.LIMIT, price=149000, trigger_price=151000, client_id="limit-trig"),
              "bad_request", "trigger_price"),
             (order(order_type=m.OrderType.SL_M, trigger_price=151000, intent="exit", client_id="slm-exit"),
              "bad_request", "order_type")]
    for cmd, code, field in cases:
        refused = await ask(bus, "execution", cmd)
        assert isinstance(refused, m.Error) and (refused.code, refused.field) == (code, field), (cmd, refused)
    assert "above the last price" in (await ask(bus, "execution", cases[1][0])).message

    placed = await ask(bus, "execution", order(qty=2, order_type=m.OrderType.SL_M, trigger_price=151000,
                                               stop_loss=148000, strategy_id="slm-1", client_id="slm-1"))
    assert isinstance(placed, m.Ok), placed
    tag = placed.data["orders"][0]["tag"]
    await eventually(lambda: journal.order_by_tag(tag)["status"] == "TRIGGER PENDING", what="waiting for its trigger")
    assert held(journal, "slm-1") == 0 and not working(journal, "slm-1", "stop_loss")
    moved = await ask(bus, "execution", m.ModifyOrder(tag=tag, trigger_price=150500))
    assert isinstance(moved, m.Ok), moved
    await eventually(lambda: journal.order_by_tag(tag)["trigger_price"] == 150500, what="the trigger moved")
    try:
        sim.admin("price", {"underlying": "INFY", "price": 1506.0})  # the market reaches the trigger
        (stop,) = await eventually(lambda: held(journal, "slm-1") == 2 and working(journal, "slm-1", "stop_loss"),
                                   what="filled, then protected")
        assert stop["trigger_price"] == 148000 and stop["quantity"] == 2 and stop["transaction_type"] == "SELL"
        assert journal.order_by_tag(tag)["order_type"] == "SL-M"
    finally:
        sim.admin("price", {"underlying": "INFY", "price": 1500.0})
    out = await ask(bus, "execution", m.SquareOffAll(reason="test over"))
    assert isinstance(out, m.Ok)
    await eventually(lambda: held(journal, "slm-1") == 0 and not working(journal, "slm-1"), what="flat")


async def test_stop_leaves_an_iron_condors_legs_to_its_wings_and_never_stops_a_wing(bus, stack):
    """A defined-risk structure is protected by its wings: Stop gives none of its legs a stop of its own.
    A stop on a wing would sell it when the option cheapens (as a far wing does) and leave the short it
    hedges naked; the bought wings' risk is their premium, the shorts' loss is capped by them."""
    _, journal, kite = stack
    calls, puts = await nifty_chain(kite, "CE"), await nifty_chain(kite, "PE")
    legs = [option_leg(calls[26400.0], "BUY", True), option_leg(puts[25600.0], "BUY", True),
            option_leg(calls[26200.0], "SELL", False), option_leg(puts[25800.0], "SELL", False)]
    condor = m.SignalGroup(id=f"condor-stop-{time.time_ns()}", user_id=USER, strategy_id="condor-1",
                           strategy="iron_condor", structure="iron_condor", underlying="NIFTY", legs=legs,
                           created_at=time.time_ns())
    await bus.js_publish(subjects.signals(USER), condor, msg_id=condor.id)
    await eventually(lambda: all(held(journal, "condor-1", leg.tradingsymbol) for leg in legs), timeout=30,
                     what="the condor's four legs held")
    try:
        stopped = await ask(bus, "live", m.StopLive())
        assert isinstance(stopped, m.Ok), stopped
        kept = {p["tradingsymbol"]: p for p in stopped.data["protected"] if p["strategy_id"] == "condor-1"}
        assert set(kept) == {leg.tradingsymbol for leg in legs}
        assert all(not p["stop"] and p["bounded"] for p in kept.values()), kept
        assert not working(journal, "condor-1")  # no SL order for any leg
        symbols = {leg.tradingsymbol for leg in legs}
        assert not [g for g in await broker(kite.gtts) if g.status == "active" and g.condition.tradingsymbol in symbols]
    finally:
        squared = await ask(bus, "live", m.StopLive(positions="square_off"))
        assert isinstance(squared, m.Ok), squared
        await eventually(lambda: not any(held(journal, "condor-1", leg.tradingsymbol) for leg in legs), timeout=30,
                         what="the condor squared off")
