"""A future held into its expiry (NRML, protected by a GTT OCO), the execution worker down over the close: kite_sim
settles it at the underlying's close and the next day's instrument list no longer has it. The restarted worker
still knows the contract (the journal remembered it while it was held) and books the settlement as Kite does —
on the expiry day, at the index's close, ``expiry:`` with its reason and an ``EXPIRY_SETTLED`` risk event — tells
the strategy (an ``external`` outcome, flat) and leaves no protection for it. Before, a future had no expiry path:
it was adopted two passes later as "a trade outside kta", dated the next day (its loss in the wrong day's P&L)."""

import time
from datetime import date

import pytest

from shared import messages as m
from shared import subjects
from tests.execution_worker.conftest import make_stack
from tests.execution_worker.kit import USER, broker, collected
from tests.helpers import eventually
from tests.simkit import start_sim

pytestmark = pytest.mark.slow(seconds=10)
MONTHLY_EXPIRY = "2026-12-29"  # NIFTY's December monthly: its future and monthly options expire


@pytest.fixture(scope="module")
def monthly_sim(tmp_path_factory):
    s = start_sim(tmp_path_factory.mktemp("sim-monthly"), seed=29, extra=("--settle", "--date", MONTHLY_EXPIRY))
    yield s
    s.stop()


def held(journal, strategy_id: str, symbol: str) -> int:
    return sum(t["quantity"] * (1 if t["transaction_type"] == "BUY" else -1) for t in journal.trades(USER)
               if t["strategy_id"] == strategy_id and t["tradingsymbol"] == symbol)


async def test_a_future_held_into_expiry_settles_at_the_index_close_on_its_day(bus, monthly_sim, data_dir):
    sim = monthly_sim
    outcomes = await collected(bus, subjects.outcomes(USER), m.StrategyOutcome)
    async with make_stack(bus, sim, data_dir) as (settings, journal, kite):
        day = date.fromisoformat(sim.trading_day())
        futures = [i for i in await broker(kite.instruments, "NFO") if i.name == "NIFTY" and i.instrument_type == "FUT"
                   and i.expiry == day]
        if not futures:
            pytest.skip(f"no NIFTY future expires on the sim's first day {day}")
        (fut,) = futures
        ltp = (await broker(kite.ltp, f"NFO:{fut.tradingsymbol}"))[f"NFO:{fut.tradingsymbol}"].last_price
        entry = m.Signal(id="fut-expiry-1", user_id=USER, strategy_id="fut-1", strategy="manual",
                         exchange=m.Exchange.NFO, tradingsymbol=fut.tradingsymbol,
                         instrument_token=fut.instrument_token, transaction_type=m.TransactionType.BUY,
                         quantity=fut.lot_size, product=m.Product.NRML, order_type=m.OrderType.MARKET,
                         stop_loss=m.to_paise(round(ltp * 0.97)), target=m.to_paise(round(ltp * 1.03)),
                         created_at=time.time_ns())
        await bus.js_publish(subjects.signals(USER), entry, msg_id=entry.id)
        await eventually(lambda: held(journal, "fut-1", fut.tradingsymbol) == fut.lot_size, timeout=30, what="filled")

        async def gtt_active():
            return [g for g in await broker(kite.gtts) if g.status == "active"
                    and g.condition.tradingsymbol == fut.tradingsymbol]

        await eventually(gtt_active, what="its GTT at the broker")
        await eventually(lambda: journal.contract("NFO", fut.tradingsymbol), what="the contract remembered")

    clock = sim.get("/sim/clock").json()  # the worker is down over the close: the broker settles alone
    sim.advance_to(15, 29, 59)
    await eventually(lambda: sim.get("/sim/clock").json()["listed_day"] != clock["trading_day"],
                     what="the next trading day listed (settled)")

    async with make_stack(bus, sim, data_dir, fresh_account=False) as (settings, journal, kite):
        assert fut.tradingsymbol not in {i.tradingsymbol for i in await broker(kite.instruments, "NFO")}  # gone
        await eventually(lambda: held(journal, "fut-1", fut.tradingsymbol) == 0, timeout=30, what="the expiry settled")
        (settled,) = [t for t in journal.trades(USER) if t["strategy_id"] == "fut-1" and t["transaction_type"] == "SELL"]
        close = (await broker(kite.ohlc, "NSE:NIFTY 50"))["NSE:NIFTY 50"].ohlc.close  # the expiry day's close
        assert (settled["order_id"], settled["quantity"], settled["price"]) == \
            (f"expiry:fut-1:{fut.tradingsymbol}", fut.lot_size, m.to_paise(close))
        assert (settled["day"], settled["fill_timestamp"]) == (MONTHLY_EXPIRY, f"{MONTHLY_EXPIRY} 15:30:00")
        assert [e for e in journal.risk_events(USER) if e["code"] == "EXPIRY_SETTLED"
                and e["message"].startswith(fut.tradingsymbol)]
        told = await eventually(lambda: [o for o in outcomes if o.kind == "external" and o.strategy_id == "fut-1"],
                                what="the strategy told")
        assert told[-1].position == 0 and "expiry settlement: the final settlement price" in told[-1].reason
        await eventually(lambda: not [p for p in journal.protections(USER) if p.strategy_id == "fut-1" and p.gtt_ids],
                         what="no protection left for the settled future")
        assert not [g for g in await broker(kite.gtts) if g.status == "active"]
