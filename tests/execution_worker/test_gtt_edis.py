"""GTT protection on an account without DDPI: a delivery sell of demat shares waits for the day's eDIS/TPIN
authorisation (Kite's 428). An exit held for the depository leaves the position its GTT until it is sent; the day's
authorisation is asked ahead, before the GTT's stop needs it; a GTT stop the depository refuses is closed at once,
held for the TPIN, not placed again at a 'corrected' stop."""

from __future__ import annotations

import os

import pytest

from shared import messages as m
from shared import subjects
from tests.execution_worker.conftest import make_stack
from tests.execution_worker.gtt_kit import active_gtts, cnc, held, publish, settling_sim, worker_on_new_day
from tests.execution_worker.kit import USER, broker, signal
from tests.helpers import eventually

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow(seconds=25)]


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """This module's own sim (``gtt_kit.settling_sim``)."""
    s = settling_sim(tmp_path_factory, "sim-gtt-edis")
    yield s
    s.stop()


async def test_an_exit_held_for_the_depository_leaves_the_position_its_gtt_until_it_is_sent(bus, sim, data_dir):
    """An account without DDPI: the exit of a delivery position whose shares have settled into the demat account
    waits HELD for the TPIN (Kite's 428) — maybe all day, maybe for ever. The position keeps its GTT meanwhile
    (the GTT was deleted for the exit before it was placed: a trader session's RELIANCE +3 sat with no
    protection at all under 'an exit of 3 is working'); once the depository authorises it, the GTT makes room
    first and the exit is placed once."""
    from tests.execution_worker.test_edis import tpin, without_ddpi

    alerts = await without_ddpi(bus, sim)
    try:
        async with make_stack(bus, sim, data_dir) as (_, journal, kite):
            await publish(bus, cnc(signal(f"edis-gtt-in-{os.getpid()}", qty=4, stop=130000, target=175000,
                                          strategy_id="gtt-edis")))

            async def protected(qty):
                gtts = await active_gtts(kite)
                return held(journal, "gtt-edis") == qty and len(gtts) == 1 and gtts[0].orders[0].quantity == qty

            await eventually(lambda: protected(4), timeout=30, what="the entry filled and its GTT at the broker")

            async def infy_holding(t1: int):  # the sim settles a day at its market loop's next tick
                infy = next(h for h in await broker(kite.holdings) if h.tradingsymbol == "INFY")
                return infy.t1_quantity == t1 and infy.quantity >= 4

            for t1 in (4, 0):  # T1 the next day, in the demat account the day after
                sim.admin("advance", {"seconds": 22500})  # one whole session
                await eventually(lambda: infy_holding(t1), timeout=30, what=f"the next session's holdings (T1 {t1})")
                await eventually(lambda: protected(4), timeout=30, what="the GTT carried through the close")
            await worker_on_new_day(bus, sim)

            out = cnc(signal(f"edis-gtt-out-{os.getpid()}", side="SELL", qty=4, intent="exit", strategy_id="gtt-edis"))
            await publish(bus, out)
            exit_row = await eventually(lambda: next((o for o in journal.orders_of_signal(out.id)
                                                      if o["state"] == "HELD"), None), timeout=30, what="the exit held")
            await eventually(lambda: protected(4), timeout=30, what="the position protected while its exit is held")
            link = (await eventually(lambda: [a.link for a in alerts if exit_row["tag"] in a.detail], what="alert"))[0]
            tpin(link)
            await eventually(lambda: held(journal, "gtt-edis") == 0, timeout=30, what="the exit sent and filled")
            assert not await active_gtts(kite)
            assert len(await at_broker(kite, exit_row["tag"])) == 1
    finally:
        sim.admin("accounts", {"user_id": "DEMO01", "edis": False})


async def at_broker(kite, tag: str) -> list:
    return [o for o in await broker(kite.orders) if o.tag == tag]


async def test_an_edis_account_is_asked_for_the_day_s_authorisation_before_its_gtt_stop_needs_it(bus, sim, data_dir):
    """An account without DDPI, a delivery position settled into the demat account and protected by a GTT:
    without the day's TPIN its stop leg's sell is refused (428) exactly when the price reaches it — kta then
    retried the GTT and sent a flatten that waited HELD too, the shares unprotected. At the open kta asks the
    depository for what the GTT would sell (an alert with the link, the link on the position's protection row);
    once authorised the prompt goes, and the stop fires and its sell fills: no retry, no flatten, nothing held."""
    from tests.execution_worker.test_edis import tpin, without_ddpi

    alerts = await without_ddpi(bus, sim)
    try:
        async with make_stack(bus, sim, data_dir) as (_, journal, kite):
            await publish(bus, cnc(signal(f"edis-ahead-in-{os.getpid()}", qty=4, stop=130000, target=175000,
                                          strategy_id="gtt-ahead")))

            async def protected(qty):
                gtts = await active_gtts(kite)
                return held(journal, "gtt-ahead") == qty and len(gtts) == 1 and gtts[0].orders[0].quantity == qty

            await eventually(lambda: protected(4), timeout=30, what="the entry filled and its GTT at the broker")
            assert not [a for a in alerts if a.kind == "authorisation"]  # bought today: not in the demat account yet

            async def infy_holding(t1: int):
                infy = next(h for h in await broker(kite.holdings) if h.tradingsymbol == "INFY")
                return infy.t1_quantity == t1 and infy.quantity >= 4

            for t1 in (4, 0):  # T1 the next day (a sell needs no TPIN), in the demat account the day after
                sim.admin("advance", {"seconds": 22500})
                await eventually(lambda: infy_holding(t1), timeout=30, what=f"the next session's holdings (T1 {t1})")
                await eventually(lambda: protected(4), timeout=30, what="the GTT carried through the close")
            day = sim.trading_day()
            ask = (await eventually(lambda: [a for a in alerts if a.kind == "authorisation"], timeout=30,
                                    what="the day's authorisation asked at the open"))
            assert len(ask) == 1 and "4 INFY" in ask[0].title and day in ask[0].key, ask
            link = ask[0].link
            assert link.startswith(f"{sim.root}/connect/portfolio/authorise/holdings/{sim.api_key}/")

            async def prompt() -> str:
                snap = await bus.request(subjects.cmd(USER, "execution", "positions"), m.GetPositions(), timeout=15)
                return next((s["authorise"] for s in snap.data["protection"] if s["strategy_id"] == "gtt-ahead"), "")

            assert await eventually(lambda: prompt(), timeout=30, what="the link on the position's row") == link
            tpin(link)
            await eventually(lambda: _empty(prompt()), timeout=30, what="the prompt gone once authorised")

            sim.admin("price", {"underlying": "INFY", "price": 1297.0})  # through the stop (above its limit 1293.50)
            await eventually(lambda: held(journal, "gtt-ahead") == 0, timeout=30, what="the GTT's stop sold and filled")
            sells = [o for o in await broker(kite.orders) if o.tradingsymbol == "INFY" and o.transaction_type == "SELL"]
            assert [(o.status, o.quantity, o.product) for o in sells] == [("COMPLETE", 4, "CNC")], sells
            assert not [o for o in journal.orders(USER) if o["state"] == "HELD" or o["kind"] == "flatten"]
            assert len([a for a in alerts if a.kind == "authorisation"]) == 1  # asked once, never a 428's second
    finally:
        sim.admin("accounts", {"user_id": "DEMO01", "edis": False})
        sim.admin("price", {"underlying": "INFY", "price": None})


async def _empty(value) -> bool:
    return not await value


async def test_a_gtt_stop_the_depository_refuses_is_sold_once_authorised_without_a_second_gtt(bus, sim, data_dir):
    """An account without DDPI whose trader did not authorise today: the GTT's stop fires and the depository
    refuses its sale (428). Nothing about the trigger is wrong, so kta does not place the GTT again at a
    'corrected' stop (it fired at once and failed the same way) before closing: the close is sent at once, waits
    HELD for the TPIN with its link, and sells the moment it is given."""
    from tests.execution_worker.test_edis import tpin, without_ddpi

    alerts = await without_ddpi(bus, sim)
    try:
        async with make_stack(bus, sim, data_dir) as (_, journal, kite):
            await publish(bus, cnc(signal(f"edis-refused-in-{os.getpid()}", qty=3, stop=130000, target=175000,
                                          strategy_id="gtt-refused")))

            async def protected(qty):
                gtts = await active_gtts(kite)
                return held(journal, "gtt-refused") == qty and len(gtts) == 1 and gtts[0].orders[0].quantity == qty

            await eventually(lambda: protected(3), timeout=30, what="the entry filled and its GTT at the broker")
            for t1 in (3, 0):
                sim.admin("advance", {"seconds": 22500})
                await eventually(lambda: _infy(kite, t1), timeout=30, what=f"the next session's holdings (T1 {t1})")
                await eventually(lambda: protected(3), timeout=30, what="the GTT carried through the close")
            before = {g.id for g in await broker(kite.gtts) if g.condition.tradingsymbol == "INFY"}
            # the GTT fired before the worker heard the new day (a full run on a loaded machine): its close was
            # stamped with the day before, withdrawn as that day's order and never sold
            await worker_on_new_day(bus, sim)

            sim.admin("price", {"underlying": "INFY", "price": 1297.0})  # through the stop, nothing authorised
            flatten = await eventually(lambda: next((o for o in journal.orders(USER) if o["kind"] == "flatten"
                                                     and o["strategy_id"] == "gtt-refused" and o["state"] == "HELD"),
                                                    None), timeout=30, what="the close held for the depository")
            fired = [g for g in await broker(kite.gtts) if g.condition.tradingsymbol == "INFY" and g.id not in before]
            assert not fired, fired  # no GTT placed again at a 'corrected' stop
            assert [a for a in alerts if a.kind == "unprotected" and "depository refused" in a.title]
            link = (await eventually(lambda: [a.link for a in alerts if flatten["tag"] in a.detail], what="alert"))[0]
            tpin(link)
            await eventually(lambda: held(journal, "gtt-refused") == 0, timeout=30, what="sold once authorised")
            assert len(await at_broker(kite, flatten["tag"])) == 1
    finally:
        sim.admin("accounts", {"user_id": "DEMO01", "edis": False})
        sim.admin("price", {"underlying": "INFY", "price": None})


async def _infy(kite, t1: int) -> bool:
    infy = next(h for h in await broker(kite.holdings) if h.tradingsymbol == "INFY")
    return infy.t1_quantity == t1
