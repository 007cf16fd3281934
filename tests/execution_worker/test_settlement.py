"""The broker's end of day reaches kta's book: on a kite_sim with settlement (``--settle``), the market
clock moves to the next trading day; the sim squares off the open MIS position at the close and settles
the option that expired. The positions cross-check adopts both — the square-off as an external fill at
the close, the expiry through ``ExerciseHandler.settle`` at the option's settlement value — journals them,
tells each strategy (``external`` outcomes, position 0), raises alerts, and leaves no stop behind: kta's
book equals the broker's again."""

import time
from datetime import date, datetime

import pytest

from kite_sim.clock import CLOSE_SECONDS
from shared import messages as m
from shared import subjects
from tests.execution_worker.conftest import make_stack
from tests.execution_worker.kit import USER, broker, collected, signal
from tests.helpers import eventually

pytestmark = pytest.mark.slow(seconds=8)


def held(journal, strategy_id: str, symbol: str) -> int:
    return sum(t["quantity"] * (1 if t["transaction_type"] == "BUY" else -1) for t in journal.trades(USER)
               if t["strategy_id"] == strategy_id and t["tradingsymbol"] == symbol)


async def test_mis_square_off_and_expiry_settlement_are_adopted(bus, expiry_sim, data_dir):
    sim = expiry_sim
    outcomes = await collected(bus, subjects.outcomes(USER), m.StrategyOutcome)
    alerts = await collected(bus, subjects.alerts(USER), m.Alert)
    async with make_stack(bus, sim, data_dir) as (settings, journal, kite):
        day = date.fromisoformat(sim.get("/sim/clock").json()["trading_day"])
        calls = [i for i in await broker(kite.instruments, "NFO") if i.name == "NIFTY" and i.instrument_type == "CE"
                 and i.expiry == day]
        if not calls:
            pytest.skip(f"no NIFTY contract expires on the sim's first day {day}")
        itm = min(calls, key=lambda i: abs(i.strike - 25800))  # in the money at the pinned 26,000
        option = m.Signal(id="settle-opt-1", user_id=USER, strategy_id="opt-1", strategy="manual",
                          exchange=m.Exchange.NFO, tradingsymbol=itm.tradingsymbol,
                          instrument_token=itm.instrument_token, transaction_type=m.TransactionType.BUY,
                          quantity=itm.lot_size, product=m.Product.NRML, order_type=m.OrderType.MARKET,
                          created_at=time.time_ns())
        equity = signal("settle-mis-1", qty=5, stop=140000, strategy_id="mis-1")
        for sig in (option, equity):
            await bus.js_publish(subjects.signals(USER), sig, msg_id=sig.id)
        await eventually(lambda: held(journal, "mis-1", "INFY") == 5 and
                         held(journal, "opt-1", itm.tradingsymbol) == itm.lot_size, timeout=30, what="both filled")
        await eventually(lambda: [r for r in journal.orders(USER) if r["strategy_id"] == "mis-1"
                                  and r["kind"] == "stop_loss" and r["state"] == "TRIGGER PENDING"], what="the stop")

        clock = sim.get("/sim/clock").json()
        now = datetime.strptime(clock["now"], "%Y-%m-%d %H:%M:%S")
        sim.admin("advance", {"seconds": CLOSE_SECONDS - (now.hour * 3600 + now.minute * 60 + now.second) + 60})
        await eventually(lambda: sim.get("/sim/clock").json()["trading_day"] != clock["trading_day"],
                         what="the next trading day")

        async def settled() -> bool:
            return not [p for p in (await broker(kite.positions)).net if p.quantity]

        await eventually(settled, what="the broker's settlement of both")

        await eventually(lambda: held(journal, "mis-1", "INFY") == 0, timeout=30, what="the square-off adopted")
        await eventually(lambda: held(journal, "opt-1", itm.tradingsymbol) == 0, timeout=30, what="the expiry settled")
        spot = (await broker(kite.ohlc, "NSE:NIFTY 50"))["NSE:NIFTY 50"].ohlc.close
        (expiry,) = [t for t in journal.trades(USER) if t["order_id"] == f"expiry:opt-1:{itm.tradingsymbol}"]
        assert (expiry["transaction_type"], expiry["price"]) == ("SELL", m.to_paise(spot) - m.to_paise(itm.strike))
        infy_close = (await broker(kite.ohlc, "NSE:INFY"))["NSE:INFY"].ohlc.close
        (square,) = [t for t in journal.trades(USER) if t["strategy_id"] == "mis-1" and t["order_id"].startswith("external:")]
        assert (square["transaction_type"], square["quantity"], square["price"]) == ("SELL", 5, m.to_paise(infy_close))

        told = await eventually(lambda: {o.strategy_id: o for o in outcomes if o.kind == "external"}
                                if len({o.strategy_id for o in outcomes if o.kind == "external"}) == 2 else None,
                                what="both strategies told")
        assert told["mis-1"].position == 0 and "MIS auto square-off" in told["mis-1"].reason
        assert told["opt-1"].position == 0 and "expiry settlement: exercised" in told["opt-1"].reason
        codes = {e["code"] for e in journal.risk_events(USER)}
        assert {"EXTERNAL_FILL", "EXPIRY_EXERCISED"} <= codes
        await eventually(lambda: len([a for a in alerts if a.key.startswith("external:")]) == 2, what="two alerts")
        # no stop left for a position the broker no longer holds (the sim expired it; none was placed again)
        assert not [r for r in journal.orders(USER) if r["kind"] == "stop_loss"
                    and r["state"] in ("OPEN", "TRIGGER PENDING", "PLACED", "MODIFIED")]
        assert not [o for o in (await broker(kite.orders)) if o.status in ("OPEN", "TRIGGER PENDING")]
