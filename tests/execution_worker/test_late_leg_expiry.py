"""A strategy's option leg filled after the last positions pass of its expiry day (an entry at 15:25 at 60x, where a
pass comes every 30 market minutes) is settled the next day as an expiry: at its intrinsic value on the index's
close, "expiry settlement" with the exerciser's outcome, dated the expiry day — not adopted as "a trade outside
kta". Its contract was journaled when kta placed the order: no pass ever saw it held while the day's instrument list
had it, and the next day's list no longer has it (the expiry soak found it adopted as outside kta)."""

import time

import pytest

from execution_worker import placing
from execution_worker.crosscheck import CrossCheck
from execution_worker.exercise import ExerciseHandler
from execution_worker.journal import Journal
from execution_worker.reconcile import reconcile
from shared import messages as m
from shared import subjects
from shared.trading import planning
from shared.trading.positions import from_broker
from tests.execution_worker.expiry_kit import late_sim, nfo_list  # noqa: F401 - late_sim: the module's fixture
from tests.execution_worker.kit import USER, broker, collected, fresh_desk
from tests.helpers import eventually

pytestmark = pytest.mark.slow(seconds=8)
STRATEGY = "late-leg"


async def test_a_leg_filled_after_its_expiry_days_last_pass_settles_as_an_expiry(bus, late_sim, data_dir):
    sim = late_sim
    desk, kite, journal = fresh_desk(sim, bus, data_dir)
    sim.admin("price", {"underlying": "NIFTY", "price": 26000.0})
    alerts = await collected(bus, subjects.alerts(USER), m.Alert)
    outcomes = await collected(bus, subjects.outcomes(USER), m.StrategyOutcome)
    check = CrossCheck(desk, ExerciseHandler(USER, journal))

    async def positions_pass():
        return await check.run(from_broker((await broker(kite.positions)).net))

    try:
        day = sim.trading_day()
        desk.instruments.update(await nfo_list(kite))  # the expiry day's list
        calls = [i for i in desk.instruments.values() if i.name == "NIFTY" and i.instrument_type == "CE"
                 and i.expiry.isoformat() == day]
        if not calls:
            pytest.skip(f"no NIFTY contract expires on the sim's day {day}")
        itm = min(calls, key=lambda i: abs(i.strike - 25800))  # in the money at the pinned 26,000
        sim.advance_to(15, 20)
        await positions_pass()  # the expiry day's last pass: nothing held yet

        sim.advance_to(15, 25)
        sig = m.Signal(id=f"late-{time.time_ns()}", user_id=USER, strategy_id=STRATEGY, strategy="manual",
                       exchange=m.Exchange.NFO, tradingsymbol=itm.tradingsymbol, instrument_token=itm.instrument_token,
                       transaction_type=m.TransactionType.BUY, quantity=itm.lot_size, product=m.Product.NRML,
                       order_type=m.OrderType.MARKET, intent="entry", created_at=time.time_ns())
        bought = await placing.place(desk, planning.signal_requests(sig, itm, -1)[0], STRATEGY)
        await placing.wait_final(desk, [desk.book.by_order_id(bought)], 10)
        assert desk.tracker.held(STRATEGY, "NFO", itm.tradingsymbol)[0] == itm.lot_size
        restarted = Journal(data_dir / "journal.db")  # durable at the order: a restarted worker's journal has it
        assert restarted.contract("NFO", itm.tradingsymbol) == itm
        restarted.close()

        sim.advance_to(15, 29, 59)  # the close: the broker settles the call, the next day lists no contract of it
        await eventually(lambda: sim.get("/sim/clock").json()["listed_day"] != day, what="the next trading day listed")
        desk.instruments.clear()
        desk.instruments.update(await nfo_list(kite))
        assert f"NFO:{itm.tradingsymbol}" not in desk.instruments
        await positions_pass()
        await reconcile(desk)
        await positions_pass()  # a difference seen twice with a reconciliation between would be adopted here

        assert desk.tracker.held(STRATEGY, "NFO", itm.tradingsymbol)[0] == 0
        close = m.to_paise((await broker(kite.ohlc, "NSE:NIFTY 50"))["NSE:NIFTY 50"].ohlc.close)  # the expiry day's
        (settled,) = [t for t in journal.trades(USER)
                      if t["strategy_id"] == STRATEGY and t["transaction_type"] == "SELL"]
        assert (settled["order_id"], settled["quantity"], settled["price"]) == \
            (f"expiry:{STRATEGY}:{itm.tradingsymbol}", itm.lot_size, close - m.to_paise(itm.strike))
        assert (settled["day"], settled["fill_timestamp"]) == (day, f"{day} 15:30:00")
        assert [e for e in journal.risk_events(USER) if e["code"] == "EXPIRY_EXERCISED"]
        assert not [e for e in journal.risk_events(USER) if e["code"] == "EXTERNAL_FILL"]
        (told,) = await eventually(lambda: [o for o in outcomes if o.kind == "external" and o.strategy_id == STRATEGY],
                                   what="the strategy told")
        assert told.position == 0 and told.reason.startswith("expiry settlement: exercised")
        (said,) = await eventually(lambda: [a for a in alerts if a.kind == "external_fill"], what="the trader alerted")
        assert said.title == f"{itm.tradingsymbol}: settled at its expiry" and "outside kta" not in said.detail
    finally:
        sim.admin("price", {"underlying": "NIFTY", "price": None})
        await kite.aclose()
