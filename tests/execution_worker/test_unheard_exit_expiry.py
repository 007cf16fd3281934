"""An exit kta placed in the last seconds of its option's expiry day, filled by the broker while kta was not listening
(no order update heard; a restarted worker's journal holds it open), must be journaled at its fill once the close
has passed — not settled as an expiry at the intrinsic value on top of, or instead of, that fill. Kite's order book
is per day: the next day's book no longer lists the exit (reconciliation expires it, unfilled as far as kta knows)
and the broker's positions no longer list the contract."""


import asyncio
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
STRATEGY = "unheard-exit"



@pytest.mark.xfail(strict=True, reason="known gap: reconciliation expires the unlisted exit unfilled and the position "
                   "is settled at intrinsic (order expiry:...), the exit's own fill and price lost. Kite's order book "
                   "is the day's: once the day is gone the fill is readable only if the broker still serves the order "
                   "by id (kite_sim drops a closed day's orders; whether Kite keeps them is not established here)")
async def test_an_exit_filled_unheard_before_the_close_is_journaled_at_its_fill(bus, late_sim, data_dir):
    sim = late_sim
    desk, kite, journal = fresh_desk(sim, bus, data_dir)
    sim.admin("price", {"underlying": "NIFTY", "price": 26000.0})
    check = CrossCheck(desk, ExerciseHandler(USER, journal))

    async def positions_pass():
        return await check.run(from_broker((await broker(kite.positions)).net))

    def signal(side, intent):
        return m.Signal(id=f"{intent}-{time.time_ns()}", user_id=USER, strategy_id=STRATEGY, strategy="manual",
                        exchange=m.Exchange.NFO, tradingsymbol=itm.tradingsymbol,
                        instrument_token=itm.instrument_token, transaction_type=side, quantity=itm.lot_size,
                        product=m.Product.NRML, order_type=m.OrderType.MARKET, intent=intent, created_at=time.time_ns())

    try:
        day = sim.trading_day()
        desk.instruments.update(await nfo_list(kite))
        calls = [i for i in desk.instruments.values() if i.name == "NIFTY" and i.instrument_type == "CE"
                 and i.expiry.isoformat() == day]
        if not calls:
            pytest.skip(f"no NIFTY contract expires on the sim's day {day}")
        itm = min(calls, key=lambda i: abs(i.strike - 25800))
        sim.advance_to(15, 20)
        bought = await placing.place(desk, planning.signal_requests(signal(m.TransactionType.BUY, "entry"), itm, -1)[0],
                                     STRATEGY)
        await placing.wait_final(desk, [desk.book.by_order_id(bought)], 10)
        await positions_pass()  # the expiry day's last pass: held here and at the broker
        assert desk.tracker.held(STRATEGY, "NFO", itm.tradingsymbol)[0] == itm.lot_size

        sim.advance_to(15, 29, 50)
        sold = await placing.place(desk, planning.signal_requests(signal(m.TransactionType.SELL, "exit"), itm, -1)[0],
                                   STRATEGY)
        for task in asyncio.all_tasks():  # the worker dies before its read-back of the exit (no update relayed)
            if task.get_name() == f"confirm:{sold}":
                task.cancel()
        (fill,) = await eventually(lambda: kite.order_trades(sold), what="the broker fills the exit")
        fill_price = m.to_paise(fill.average_price)
        assert desk.book.by_order_id(sold).fill_quantity == 0

        sim.advance_to(15, 29, 59)  # the close
        await eventually(lambda: sim.get("/sim/clock").json()["listed_day"] != day, what="the next trading day listed")
        desk.instruments.clear()
        desk.instruments.update(await nfo_list(kite))

        async def day_book_gone():  # the restarted worker's first read: the next day's book
            return sold not in {o.order_id for o in await broker(kite.orders)}
        await eventually(day_book_gone, what="the exit gone from the next day's order book")
        for _ in range(2):
            await reconcile(desk)
            await positions_pass()
        await reconcile(desk)
        await positions_pass()

        assert desk.tracker.held(STRATEGY, "NFO", itm.tradingsymbol)[0] == 0
        sells = [(t["order_id"], t["quantity"], t["price"]) for t in journal.trades(USER)
                 if t["strategy_id"] == STRATEGY and t["transaction_type"] == "SELL"]
        assert sells == [(sold, itm.lot_size, fill_price)]  # once, at its fill: no expiry settlement on top
        assert not [e for e in journal.risk_events(USER) if e["code"] == "EXTERNAL_FILL"]
    finally:
        sim.admin("price", {"underlying": "NIFTY", "price": None})
        await kite.aclose()
