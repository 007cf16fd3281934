"""The expiry day's 15:20 on the exchange's clock: a contract expiring today gets its GTT when its protection is
asked before (the broker settles it at the close; until then it is protected as any other), and none when asked
after — its position shows ``settling``, nothing is refused, no close is sent. kta's clock lags the exchange a
little (it hears the time from what arrives): an entry decided on a tick of 15:19:58 whose fill the broker stamps
after 15:20 is protected after 15:20 — the fill's own stamp says so, wherever kta reads it from (the WebSocket's
update, or its read-back of the order: before, only the former moved the clock, and the read-back's fill, first
here, had a GTT placed for a contract settling at the close). The sim runs at the machine's pace."""

import time
from datetime import date

import pytest

from shared import ist, subjects
from shared import messages as m
from tests.execution_worker.conftest import make_stack
from tests.execution_worker.kit import USER, broker
from tests.helpers import eventually
from tests.simkit import start_sim

pytestmark = pytest.mark.slow(seconds=10)
MONTHLY_EXPIRY = "2026-12-29"  # NIFTY's December monthly: its future expires at this day's close


@pytest.fixture(scope="module")
def expiry_sim(tmp_path_factory):
    s = start_sim(tmp_path_factory.mktemp("sim-settling"), speed=1.0, seed=20,
                  extra=("--settle", "--date", MONTHLY_EXPIRY))
    yield s
    s.stop()


def held(journal, strategy_id: str) -> int:
    return sum(t["quantity"] * (1 if t["transaction_type"] == "BUY" else -1) for t in journal.trades(USER)
               if t["strategy_id"] == strategy_id)


def entry(fut, ltp: float, strategy_id: str, at: str) -> m.Signal:
    """A future bought with a stop and a target, on a tick of ``at`` (hh:mm:ss) on the expiry day."""
    return m.Signal(id=f"settling-{strategy_id}", user_id=USER, strategy_id=strategy_id, strategy="manual",
                    exchange=m.Exchange.NFO, tradingsymbol=fut.tradingsymbol, instrument_token=fut.instrument_token,
                    transaction_type=m.TransactionType.BUY, quantity=fut.lot_size, product=m.Product.NRML,
                    order_type=m.OrderType.MARKET, stop_loss=m.to_paise(round(ltp * 0.97)),
                    target=m.to_paise(round(ltp * 1.03)), created_at=time.time_ns(),
                    tick_ts=int(ist.parse(f"{MONTHLY_EXPIRY} {at}")))


async def test_an_expiring_contract_is_protected_before_1520_by_the_exchange_s_stamps(bus, expiry_sim, data_dir):
    sim = expiry_sim
    limits = m.RiskLimits(max_position_lots=10, max_exposure=10_000_000_000_00,
                          max_exposure_per_symbol=1_000_000_000_00,
                          max_exposure_per_strategy=1_000_000_000_00)  # three lots of one future
    async with make_stack(bus, sim, data_dir, risk=limits) as (_, journal, kite):
        assert sim.trading_day() == MONTHLY_EXPIRY
        (fut,) = [i for i in await broker(kite.instruments, "NFO") if i.name == "NIFTY" and i.instrument_type == "FUT"
                  and i.expiry == date.fromisoformat(MONTHLY_EXPIRY)]
        ltp = (await broker(kite.ltp, f"NFO:{fut.tradingsymbol}"))[f"NFO:{fut.tradingsymbol}"].last_price

        async def gtts() -> list:
            return [g for g in await broker(kite.gtts) if g.status == "active"
                    and g.condition.tradingsymbol == fut.tradingsymbol]

        async def state(strategy_id: str) -> str:
            snap = await bus.request(subjects.cmd(USER, "execution", "positions"), m.GetPositions(), timeout=15)
            return next((s["state"] for s in snap.data["protection"] if s["strategy_id"] == strategy_id), "")

        assert sim.advance_to(15, 19, 40)
        before = entry(fut, ltp, "before", "15:19:40")
        await bus.js_publish(subjects.signals(USER), before, msg_id=before.id)
        await eventually(lambda: held(journal, "before") == fut.lot_size, timeout=30, what="bought before 15:20")
        (gtt,) = await eventually(gtts, what="its GTT at the broker")
        assert gtt.orders[0].quantity == fut.lot_size
        assert await eventually(lambda: state("before"), what="its protection") == "protected"

        assert sim.advance_to(15, 20, 5)
        racing = entry(fut, ltp, "racing", "15:19:58")  # kta's clock still before 15:20, the exchange past it
        await bus.js_publish(subjects.signals(USER), racing, msg_id=racing.id)
        await eventually(lambda: held(journal, "racing") == fut.lot_size, timeout=30, what="the racing entry filled")
        await eventually(lambda: _is(state("racing"), "settling"), timeout=15, what="the racing one settling")

        after = entry(fut, ltp, "after", "15:20:10")
        await bus.js_publish(subjects.signals(USER), after, msg_id=after.id)
        await eventually(lambda: held(journal, "after") == fut.lot_size, timeout=30, what="bought after 15:20")
        await eventually(lambda: _is(state("after"), "settling"), timeout=15, what="the later one settling")
        assert [g.id for g in await gtts()] == [gtt.id]  # none placed for the later one; the earlier one's kept
        protections = {p.strategy_id: p for p in journal.protections(USER)}
        for late in ("racing", "after"):
            assert not protections[late].gtt_ids and not protections[late].gtt_asked, protections[late]
            assert protections[late].mode != "failed"  # nothing refused, no close sent
            assert not [o for o in journal.orders(USER) if o["strategy_id"] == late and o["kind"] != "entry"]


async def _is(value, want) -> bool:
    return await value == want
