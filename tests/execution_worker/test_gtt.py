"""CNC/NRML protection that outlives the session: a Kite GTT OCO (stop leg + target leg, LIMIT orders
priced through their triggers) at a kite_sim with end-of-day settlement, through the real worker.

A CNC entry gets its GTT from its fill (and no day SL order); an exit of part of it first shrinks the GTT
(the same trigger, modified), an exit of all of it deletes it; the GTT survives the session close (the
day orders expire, the shares go to holdings as T1) and its stop fires on the next session's price: the
fired order joins kta's book as the position's stop, its fill is journaled and the strategy hears a
protective fill that leaves it flat — with no phantom external fill from the cross-check. A worker
SIGKILLed overnight, whose GTT vanished meanwhile, finds the carried position on start (no signal,
no order update, no command) and protects it again."""

from __future__ import annotations

import json
import os
import signal as signals
import time

import msgspec
import pytest

from execution_worker import protector
from execution_worker.journal import Journal
from shared import messages as m
from shared import subjects
from shared.broker_sessions import put_session, vault_for
from shared.kite.client import KiteClient
from shared.kite.budget import SharedBudget
from shared.trading.protection import Protection
from shared.trading.protection_gtt import spec
from tests.execution_worker.conftest import make_stack
from tests.execution_worker.gtt_kit import active_gtts, cnc, held, next_session, publish, settling_sim
from tests.execution_worker.kit import USER, broker, fresh_desk, nifty_chain, signal
from tests.execution_worker.test_crash_recovery import fresh_settings, spawn, stop
from tests.helpers import eventually, wait_health
from tests.simkit import login

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow(seconds=55)]
INFY = 408065


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """This module's own sim (``gtt_kit.settling_sim``)."""
    s = settling_sim(tmp_path_factory, "sim-gtt")
    yield s
    s.stop()


async def _none(gtts) -> bool:
    return not await gtts


async def test_a_cnc_position_keeps_its_gtt_through_the_close_and_its_stop_fires_next_session(bus, sim, data_dir):
    async with make_stack(bus, sim, data_dir) as (_, journal, kite):
        entry = cnc(signal(f"gtt-in-{os.getpid()}", qty=5, stop=147000, target=156000, strategy_id="gtt-1"))
        await publish(bus, entry)

        async def protected(qty):
            gtts = await active_gtts(kite)
            return held(journal, "gtt-1") == qty and len(gtts) == 1 and gtts[0].orders[0].quantity == qty and gtts[0]

        g = await eventually(lambda: protected(5), timeout=30, what="the entry filled and its GTT at the broker")
        assert (g.type, g.condition.trigger_values) == ("two-leg", [1470.0, 1560.0])
        # both legs sell the whole position as CNC LIMIT orders priced through their triggers (0.5 % band)
        assert [(o.transaction_type, o.quantity, o.order_type, o.product, o.price) for o in g.orders] == [
            ("SELL", 5, "LIMIT", "CNC", 1462.65), ("SELL", 5, "LIMIT", "CNC", 1552.2)]
        book = await broker(kite.orders)  # no day SL beside it: one resting exit per position
        assert not [o for o in book if o.tradingsymbol == "INFY" and o.status in ("TRIGGER PENDING", "OPEN")]

        out = cnc(signal(f"gtt-out-{os.getpid()}", side="SELL", qty=2, intent="exit", strategy_id="gtt-1"))
        await publish(bus, out)
        shrunk = await eventually(lambda: protected(3), timeout=30, what="the partial exit filled, the GTT for 3")
        assert shrunk.id == g.id  # modified, not replaced
        assert [o.quantity for o in shrunk.orders] == [3, 3]

        day1 = next_session(sim)
        carried = await eventually(lambda: protected(3), timeout=30, what="the GTT still active after the close")
        assert carried.id == g.id
        assert sim.get("/sim/clock").json()["trading_day"] != day1

        sim.admin("price", {"underlying": "INFY", "price": 1465.0})  # through the stop on the new session
        await eventually(lambda: held(journal, "gtt-1") == 0, timeout=30, what="the GTT's stop filled and journaled")
        fired = (await broker(kite.gtt, g.id))
        assert fired.status == "triggered"
        order_id = fired.orders[0].result.order_result.order_id
        row = journal.order_by_id(order_id)
        assert (row["kind"], row["strategy_id"], row["transaction_type"], row["quantity"], row["state"]) == (
            "stop_loss", "gtt-1", "SELL", 3, "COMPLETE")
        fills = [o for o in journal.outcomes(USER) if o["strategy_id"] == "gtt-1" and o["kind"] == "protective_fill"]
        assert sum(o["quantity"] for o in fills) == 3 and fills[-1]["position"] == 0  # the strategy is flat

        # the cross-check sees the sale against the T1 holding: no phantom external fill
        snap = await bus.request(subjects.cmd(USER, "execution", "positions"), m.GetPositions(), timeout=15)
        assert snap
        assert not [e for e in journal.risk_events(USER) if e["code"] == "EXTERNAL_FILL"]
        assert not await active_gtts(kite)


async def test_closing_the_position_or_squaring_off_deletes_its_gtt(bus, sim, data_dir):
    async with make_stack(bus, sim, data_dir) as (_, journal, kite):
        entry = cnc(signal(f"gtt-close-in-{os.getpid()}", qty=4, stop=147000, target=156000, strategy_id="gtt-2"))
        await publish(bus, entry)
        gtts = await eventually(lambda: held(journal, "gtt-2") == 4 and active_gtts(kite), timeout=30,
                                what="the entry's GTT")
        trigger_id = gtts[0].id
        out = cnc(signal(f"gtt-close-out-{os.getpid()}", side="SELL", qty=4, intent="exit", strategy_id="gtt-2"))
        await publish(bus, out)
        await eventually(lambda: held(journal, "gtt-2") == 0, timeout=30, what="the exit filled")
        g = await broker(kite.gtt, trigger_id)
        assert g.status == "deleted"
        assert not await active_gtts(kite)
        sold = [t for t in journal.trades(USER) if t["strategy_id"] == "gtt-2" and t["transaction_type"] == "SELL"]
        assert sum(t["quantity"] for t in sold) == 4  # the exit alone sold them: never a second sale

        # Square off all: the GTT comes off the broker before the flatten sells
        await publish(bus, cnc(signal(f"gtt-sq-in-{os.getpid()}", qty=3, stop=147000, strategy_id="gtt-2b")))
        (g,) = await eventually(lambda: held(journal, "gtt-2b") == 3 and active_gtts(kite), timeout=30,
                                what="the second entry's GTT (a stop alone)")
        assert (g.type, g.orders[0].quantity) == ("single", 3)
        done = await bus.request(subjects.cmd(USER, "execution", "square_off"), m.SquareOffAll(reason="test"),
                                 timeout=30)
        assert isinstance(done, m.Ok), done
        await eventually(lambda: held(journal, "gtt-2b") == 0, timeout=30, what="squared off")
        assert (await broker(kite.gtt, g.id)).status == "deleted"
        assert not await active_gtts(kite)


async def test_a_gtt_whose_answer_was_lost_is_found_at_the_broker_and_adopted_never_made_twice(bus, sim, data_dir):
    """GTTs carry no tag: kta journals the GTT it asks for before the call, and when the answer is lost (the
    sim makes the GTT, then drops the connection) it matches the broker's active GTTs against that ask and
    adopts the one it made — kept as the position's own (an exit resizes it), never a second one beside it."""
    async with make_stack(bus, sim, data_dir) as (_, journal, kite):
        sim.faults(lose_answer_next=1, lose_answer_on="POST /gtt/triggers")
        await publish(bus, cnc(signal(f"gtt-lost-in-{os.getpid()}", qty=5, stop=147000, target=156000,
                                      strategy_id="gtt-lost")))

        def protection() -> dict:
            return next(r for r in journal.db["protections"].rows if r["strategy_id"] == "gtt-lost")

        async def adopted():
            gtts = await active_gtts(kite)
            ids = json.loads(protection()["gtt_ids"]) if held(journal, "gtt-lost") == 5 else []
            return len(gtts) == 1 and ids == [gtts[0].id] and gtts[0]

        g = await eventually(adopted, timeout=30, what="the GTT made under the lost answer, adopted")
        assert sim.admin("faults", {})["counts"].get("answer_lost") == 1  # the answer really was lost
        assert protection()["gtt_asked"] == "[]"
        out = cnc(signal(f"gtt-lost-out-{os.getpid()}", side="SELL", qty=2, intent="exit", strategy_id="gtt-lost"))
        await publish(bus, out)

        async def shrunk():
            gtts = await active_gtts(kite)
            return held(journal, "gtt-lost") == 3 and len(gtts) == 1 and gtts[0].orders[0].quantity == 3 and gtts[0]

        assert (await eventually(shrunk, timeout=30, what="the adopted GTT resized by the exit")).id == g.id
        made = [x for x in await broker(kite.gtts) if x.condition.tradingsymbol == "INFY"]
        assert [x.id for x in made] == [g.id]  # one GTT ever: never a second beside the lost one


async def test_a_gtt_whose_answer_was_lost_before_the_broker_made_it_is_asked_for_again_once(bus, sim, data_dir):
    """The other lost answer: the connection drops before the broker acts, so no GTT was made. The ask stays
    journaled until the broker's GTT book is read: nothing matches it, so it is dropped and the GTT asked for
    again — the position covered by exactly one GTT, never left bare and never two."""
    async with make_stack(bus, sim, data_dir) as (_, journal, kite):
        lost_before = sim.admin("faults", {})["counts"].get("answer_lost", 0)  # the module's sim counts them all
        sim.faults(lose_answer_next=1, lose_answer_on="POST /gtt/triggers", lose_answer_effect=False)
        await publish(bus, cnc(signal(f"gtt-unmade-in-{os.getpid()}", qty=5, stop=147000, target=156000,
                                      strategy_id="gtt-unmade")))

        def protection() -> dict:
            return next(r for r in journal.db["protections"].rows if r["strategy_id"] == "gtt-unmade")

        async def covered():
            gtts = await active_gtts(kite)
            ids = json.loads(protection()["gtt_ids"]) if held(journal, "gtt-unmade") == 5 else []
            return len(gtts) == 1 and ids == [gtts[0].id] and protection()["gtt_asked"] == "[]" and gtts[0]

        g = await eventually(covered, timeout=30, what="the lost ask dropped and the GTT made by the next ask")
        assert sim.admin("faults", {})["counts"]["answer_lost"] == lost_before + 1  # the answer really was lost
        assert g.orders[0].quantity == 5 and g.condition.trigger_values[0] == 1470.0
        made = [x for x in await broker(kite.gtts) if x.condition.tradingsymbol == "INFY"]
        assert [x.id for x in made] == [g.id]  # one GTT ever made for it
        await publish(bus, cnc(signal(f"gtt-unmade-out-{os.getpid()}", side="SELL", qty=5, intent="exit",
                                      strategy_id="gtt-unmade")))
        await eventually(lambda: held(journal, "gtt-unmade") == 0, timeout=30, what="flat again")


async def test_asks_left_by_a_crash_are_resolved_from_the_broker_s_gtt_book(bus, sim, data_dir):
    """A worker killed between asking for a GTT and journaling its id leaves the ask in the journal: the next
    pass adopts the broker's GTT that matches it, drops an ask the broker has no GTT for (it was never made;
    the position is covered), and leaves a GTT the trader made in Kite alone."""
    desk, kite, journal = fresh_desk(sim, bus, data_dir)
    try:
        p = Protection(user_id=USER, strategy_id="gtt-crash", exchange="NSE", tradingsymbol="INFY",
                       instrument_token=INFY, product="CNC", stop=147000, target=156000)
        made, never = spec(p, 5, 150000, None, 0.5), spec(p, 4, 150000, None, 0.5)
        orphan = await broker(kite.place_gtt, made.type, "NSE", "INFY", [v / 100 for v in made.trigger_values], 1500.0,
                              made.orders("CNC"))
        mine = await broker(kite.place_gtt, "single", "NSE", "INFY", [1400.0], 1500.0, [  # the trader's own, in Kite
            {"transaction_type": "SELL", "quantity": 5, "order_type": "LIMIT", "product": "CNC", "price": 1395.0}])
        p.gtt_asked = [never, made]
        journal.save_protection(p)
        desk.tracker.on_fill(strategy_id="gtt-crash", exchange="NSE", tradingsymbol="INFY", transaction_type="BUY",
                             quantity=5, price=150000, instrument_token=INFY, product="CNC")
        protector.started(desk, 0.5)  # as a restarted worker: its plans from the journal
        await desk.protector.sync_all()
        (saved,) = [x for x in journal.protections(USER) if x.strategy_id == "gtt-crash"]
        assert (saved.gtt_ids, saved.gtt_asked) == ([orphan], [])
        active = {g.id for g in await active_gtts(kite)}
        assert active == {orphan, mine}  # adopted and kept (it covers the 5 held); nothing new, the trader's untouched
    finally:
        await kite.aclose()


async def test_a_gtt_refused_twice_closes_the_position_and_alerts(bus, sim, data_dir):
    """The broker refuses the position's GTT, then the corrected one too: the position is flattened and
    the trader alerted (critical, with the broker's words) — never left open without protection. The
    same strategy's next position in the instrument, refused the same way, is flattened by an order of
    its own (the first flatten's tag is taken: reusing it placed nothing and left the position open)."""
    alerts: list[m.Alert] = []

    async def on_alert(a, msg):
        alerts.append(a)

    async with make_stack(bus, sim, data_dir) as (_, journal, kite):
        await bus.subscribe(subjects.alerts(USER), m.Alert, on_alert)
        for episode in (1, 2):
            sim.faults(reject_gtt_next=2, reject_gtt_reason="Trigger price is invalid.")
            await publish(bus, cnc(signal(f"gtt-refused-in-{episode}-{os.getpid()}", qty=4, stop=147000,
                                          target=156000, strategy_id="gtt-refused")))
            await eventually(lambda: len([t for t in journal.trades(USER) if t["strategy_id"] == "gtt-refused"])
                             >= 2 * episode - 1, timeout=30, what=f"entry {episode} filled")
            await eventually(lambda: held(journal, "gtt-refused") == 0, timeout=30,
                             what=f"position {episode} flattened")
            alert = await eventually(lambda: [a for a in alerts if a.kind == "unprotected"][episode - 1:],
                                     what=f"alert {episode}")
            assert alert[0].severity == "critical" and "INFY" in alert[0].title
            assert "Trigger price is invalid." in alert[0].detail
            kinds = [r["kind"] for r in journal.orders(USER) if r["strategy_id"] == "gtt-refused"]
            assert kinds.count("entry") == episode and kinds.count("flatten") == episode
            assert sim.admin("faults", {})["counts"]["gtt_rejected"] == 2 * episode  # both creations refused
        (p,) = [r for r in journal.db["protections"].rows if r["strategy_id"] == "gtt-refused"]
        assert (p["mode"], p["retried"], p["gtt_ids"], p["gtt_asked"]) == ("failed", 1, "[]", "[]")
        assert not await active_gtts(kite)


async def test_a_worker_killed_overnight_finds_the_carried_position_and_protects_it_again(bus, sim, data_dir, tmp_path):
    settings = fresh_settings(bus, sim, data_dir)
    token = login(sim)
    await put_session(bus, vault_for(settings), USER, sim.api_key, token)
    kite = KiteClient(sim.api_key, token, root=sim.root, rate_limiter=SharedBudget(bus, sim.api_key))
    journal = Journal(data_dir / "journal.db")
    proc = spawn(settings, tmp_path / "worker.log")
    try:
        await wait_health(bus, "execution", timeout=30)
        await publish(bus, cnc(signal(f"gtt-kill-{os.getpid()}", qty=6, stop=147000, target=156000,
                                      strategy_id="gtt-3")))

        async def protected():
            gtts = await active_gtts(kite)
            return held(journal, "gtt-3") == 6 and len(gtts) == 1 and gtts[0].orders[0].quantity == 6 and gtts[0]

        first = await eventually(protected, timeout=30, what="the entry's GTT")
        proc.send_signal(signals.SIGKILL)
        assert proc.wait(10) == -signals.SIGKILL
        next_session(sim)  # overnight, while no worker runs ...
        await broker(kite.delete_gtt, first.id)  # ... the GTT is lost (deleted in Kite, say)
        assert not await active_gtts(kite)

        proc = spawn(settings, tmp_path / "worker.log")  # nothing is sent to it: it must find the position itself
        again = await eventually(protected, timeout=60, what="the restarted worker protecting the carried position")
        assert again.id != first.id and again.condition.trigger_values == [1470.0, 1560.0]
        assert journal.protections(USER)[0].gtt_ids == [again.id]

        sim.admin("price", {"underlying": "INFY", "price": 1575.0})  # and its target leg takes the profit
        await eventually(lambda: held(journal, "gtt-3") == 0, timeout=30, what="the target leg's fill journaled")
        fired = await broker(kite.gtt, again.id)
        row = journal.order_by_id(fired.orders[1].result.order_result.order_id)
        assert (row["kind"], row["strategy_id"], row["state"]) == ("target", "gtt-3", "COMPLETE")
    finally:
        stop(proc)
        await kite.aclose()
        sim.admin("price", {"underlying": "INFY", "price": None})


async def test_an_nrml_option_position_above_the_freeze_quantity_gets_one_gtt_per_slice(bus, sim, data_dir):
    async with make_stack(bus, sim, data_dir) as (_, journal, kite):
        opt = (await nifty_chain(kite, "CE"))[26400.0]
        ltp = (await broker(kite.ltp, f"NFO:{opt.tradingsymbol}"))[f"NFO:{opt.tradingsymbol}"].last_price
        limits = m.RiskLimits(max_position_lots=50)
        assert isinstance(await bus.request(subjects.cmd(USER, "risk", "limits"), m.SetRiskLimits(limits=limits)), m.Ok)
        stop = m.to_paise(round(ltp * 0.8, 1))
        sig = m.Signal(id=f"gtt-sliced-{os.getpid()}", user_id=USER, strategy_id="gtt-4", strategy="manual",
                       exchange=m.Exchange.NFO, tradingsymbol=opt.tradingsymbol, instrument_token=opt.instrument_token,
                       transaction_type=m.TransactionType.BUY, quantity=1820, product=m.Product.NRML,
                       order_type=m.OrderType.MARKET, stop_loss=stop, created_at=time.time_ns())
        await publish(bus, sig)

        async def protected():
            gtts = await active_gtts(kite, opt.tradingsymbol)
            return held(journal, "gtt-4") == 1820 and sorted(g.orders[0].quantity for g in gtts) == [65, 1755] and gtts

        gtts = await eventually(protected, timeout=45, what="1,820 filled in slices and a GTT for each slice")
        for g in gtts:  # a stop leg alone (no target): a single trigger selling its slice as NRML
            assert (g.type, g.condition.trigger_values, g.orders[0].transaction_type, g.orders[0].product) == (
                "single", [stop / 100], "SELL", "NRML")
        out = msgspec.structs.replace(sig, id=f"gtt-sliced-out-{os.getpid()}", intent="exit",
                                      transaction_type=m.TransactionType.SELL, stop_loss=None)
        await publish(bus, out)
        await eventually(lambda: held(journal, "gtt-4") == 0, timeout=45, what="the exit filled")
        # flat: whatever GTT a slice had (one made for a slice the exit had not yet sold) is deleted
        await eventually(lambda: _none(active_gtts(kite, opt.tradingsymbol)), timeout=30, what="no GTT left")
        await bus.request(subjects.cmd(USER, "risk", "limits"), m.SetRiskLimits(limits=m.RiskLimits()))


async def test_a_fired_target_left_waiting_moves_to_the_stop_when_the_price_comes_back(bus, sim, data_dir):
    """The GTT is gone once its target leg fired; while that LIMIT waits unfilled, the stop still protects:
    the price back at the stop moves the LIMIT to the stop's own limit (as the MIS stop does)."""
    async with make_stack(bus, sim, data_dir) as (_, journal, kite):
        await publish(bus, cnc(signal(f"gtt-wait-{os.getpid()}", qty=5, stop=147000, target=153000,
                                      strategy_id="gtt-5")))
        await eventually(lambda: held(journal, "gtt-5") == 5 and active_gtts(kite), timeout=30, what="the GTT")
        sim.faults(hold_fills=True)  # what fires now rests OPEN
        sim.admin("price", {"underlying": "INFY", "price": 1535.0})

        def waiting():
            return next((r for r in journal.orders(USER) if r["strategy_id"] == "gtt-5" and r["kind"] == "target"
                         and r["state"] == "OPEN"), None)

        target = await eventually(waiting, timeout=30, what="the fired target leg's LIMIT in the book, waiting")
        assert target["price"] == 153000 - 765 and not await active_gtts(kite)
        sim.admin("price", {"underlying": "INFY", "price": 1465.0})
        tick = m.Tick(instrument_token=INFY, mode="full", tradable=True, last_price=1465.0)

        async def moved():
            await bus.publish(subjects.ticks(INFY), msgspec.structs.replace(tick, received_at=time.time_ns()))
            row = journal.order_by_tag(target["tag"])
            return row["price"] <= 147000 - 735 and row  # the stop's limit, or through the market (a chase)

        await eventually(moved, timeout=30, what="the waiting LIMIT moved to the stop")
        sim.reset_faults()
        await eventually(lambda: held(journal, "gtt-5") == 0, timeout=30, what="closed at the stop")
        (sold,) = [t for t in journal.trades(USER) if t["strategy_id"] == "gtt-5" and t["transaction_type"] == "SELL"]
        assert sold["price"] < 150000  # at the stop, not at the target it had waited for
