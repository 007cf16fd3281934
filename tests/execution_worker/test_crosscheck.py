"""The broker's positions against kta's, every positions pass: a trade placed in Kite by hand that closes
a strategy's position is adopted as an external fill of that strategy (journaled, a risk event, its
outcome with position 0), and one that opens a position belongs to the account, never to a strategy."""

import time

import pytest

from execution_worker import placing
from execution_worker.crosscheck import CrossCheck
from execution_worker.exercise import ExerciseHandler
from execution_worker.reconcile import reconcile
from shared import messages as m
from shared import subjects
from shared.trading import planning as o
from shared.trading.external import Difference
from shared.trading.positions import from_broker
from tests.execution_worker.kit import USER, broker, collected, fresh_desk, signal
from tests.helpers import eventually
from tests.simkit import PINNED, start_sim

pytestmark = pytest.mark.slow(seconds=9)


def held(journal, strategy_id: str, symbol: str = "INFY") -> int:
    return sum(t["quantity"] * (1 if t["transaction_type"] == "BUY" else -1) for t in journal.trades(USER)
               if t["strategy_id"] == strategy_id and t["tradingsymbol"] == symbol)


async def test_trades_placed_in_kite_are_adopted_as_external_fills(bus, sim, stack):
    _, journal, kite = stack
    outcomes = await collected(bus, subjects.outcomes(USER), m.StrategyOutcome)

    entry = signal("ext-entry-1", qty=4, strategy_id="ext-1", stop=140000)
    await bus.js_publish(subjects.signals(USER), entry, msg_id=entry.id)
    await eventually(lambda: held(journal, "ext-1") == 4, what="the strategy holds 4")
    await eventually(lambda: working_stops(journal, "ext-1"), what="its stop at the broker")
    await broker(kite.place_order, "regular", "NSE", "INFY", "SELL", 4, "MIS", "MARKET", market_protection=-1,
                 tag="byhand1")  # the trader closes it in Kite
    await eventually(lambda: held(journal, "ext-1") == 0, timeout=30, what="the close adopted for the strategy")
    (ext,) = await eventually(lambda: [o for o in outcomes if o.kind == "external" and o.strategy_id == "ext-1"],
                              what="the strategy told")
    assert (ext.position, ext.quantity, ext.transaction_type, ext.order_kind) == (0, 4, "SELL", "external")
    assert "outside kta" in ext.reason and ext.price > 0
    assert any(e["code"] == "EXTERNAL_FILL" and "ext-1" in e["message"] for e in journal.risk_events(USER))
    # nothing left to protect: the stop goes (left standing, it would sell 4 the account no longer holds)
    await eventually(lambda: not working_stops(journal, "ext-1"), what="the stop cancelled")

    await broker(kite.place_order, "regular", "NSE", "INFY", "BUY", 3, "MIS", "MARKET", market_protection=-1,
                 tag="byhand2")  # a new position opened in Kite: nobody's strategy
    await eventually(lambda: held(journal, "") == 3, timeout=30, what="adopted for the account")
    assert held(journal, "ext-1") == 0 and not [o for o in outcomes if o.strategy_id == "" ]
    await broker(kite.place_order, "regular", "NSE", "INFY", "SELL", 3, "MIS", "MARKET", market_protection=-1,
                 tag="byhand3")
    await eventually(lambda: held(journal, "") == 0, timeout=30, what="and its close")
    assert sum(p.quantity for p in (await broker(kite.positions)).net if p.tradingsymbol == "INFY") == 0


def working_stops(journal, strategy_id: str) -> list[dict]:
    return [r for r in journal.orders(USER) if r["strategy_id"] == strategy_id and r["kind"] == "stop_loss"
            and r["state"] in ("OPEN", "TRIGGER PENDING", "PLACED", "MODIFIED")]


async def test_kta_fills_in_flight_at_two_passes_are_not_taken_for_an_external_one(bus, sim, data_dir):
    """Under load the positions pass reads the broker while kta's own fills are still on their way. Two
    passes in a row can each find one of them missing — different fills, the same gap (a strategy that
    flips one share at a time) — with a reconciliation between that journaled the first. That is no
    MIS square-off: nothing is adopted, and the books agree once the second fill is journaled. A gap
    that stays exactly as it was across a reconciliation (a trade placed in Kite) still is."""
    desk, kite, journal = fresh_desk(sim, bus, data_dir)
    check = CrossCheck(desk, ExerciseHandler(USER, journal))

    async def positions_pass():
        return await check.run(from_broker((await broker(kite.positions)).net))

    async def kta_order_unheard(side: str) -> None:  # at the broker, filled; kta has not heard yet
        await broker(kite.place_order, "regular", "NSE", "INFY", side, 1, "MIS", "MARKET", market_protection=-1,
                     tag=o.make_tag(f"in-flight-{time.time_ns()}", "exit"))

    try:
        entry = o.signal_requests(signal(f"flip-{time.time_ns()}", qty=1, strategy_id="flip-1"), None, -1)[0]
        placed = await placing.place(desk, entry, "flip-1")
        await placing.wait_final(desk, [desk.book.by_order_id(placed)], 10)
        assert desk.tracker.net_quantity("NSE", "INFY") == 1

        await kta_order_unheard("SELL")  # the flip's exit filled: the broker 0, kta +1
        assert await positions_pass() == []
        assert not (await reconcile(desk)).errors  # journals that exit: kta 0
        await kta_order_unheard("SELL")  # the next one: the broker -1, kta 0 — the same gap of -1
        assert await positions_pass() == []  # (it was adopted: a phantom external fill for flip-1)
        assert not (await reconcile(desk)).errors
        assert await positions_pass() == []
        assert desk.tracker.net_quantity("NSE", "INFY") == -1
        assert not [t for t in journal.trades(USER) if t["order_id"].startswith("external:")]

        await broker(kite.place_order, "regular", "NSE", "INFY", "BUY", 1, "MIS", "MARKET", market_protection=-1,
                     tag="byhand4")  # a real change outside kta: seen, reconciled, seen again the same: adopted
        assert await positions_pass() == []
        assert not (await reconcile(desk)).errors
        (adopted,) = await positions_pass()
        assert (adopted["transaction_type"], adopted["quantity"]) == ("BUY", 1)
        assert desk.tracker.net_quantity("NSE", "INFY") == 0
    finally:
        await kite.aclose()


@pytest.fixture
def morning_sim(tmp_path):
    """A sim of this test's own, its clock at the open of an expiry day: the package's sim may be near its
    day's close when the test runs late in the full suite (at 60x, the test's 10 s are 10 market minutes),
    and an option held into the close does expire."""
    s = start_sim(tmp_path, speed=60.0, extra=PINNED)
    yield s
    s.stop()


async def test_an_option_the_broker_no_longer_lists_is_not_expired_while_its_session_runs(bus, morning_sim, data_dir):
    """On its expiry day, an option kta holds and the broker's positions no longer list — an exit the
    broker filled and kta has not heard yet, or a sale in Kite — is not settled as expired while the
    exchange's day is still running (the spot quote's time), whatever this machine's clock says: a
    condor's wing was once "expired worthless" at 09:49 because the machine's clock was past 15:30 IST."""
    desk, kite, journal = fresh_desk(morning_sim, bus, data_dir)
    check = CrossCheck(desk, ExerciseHandler(USER, journal))
    day = (await broker(kite.quote, "NSE:NIFTY 50"))["NSE:NIFTY 50"].timestamp[:10]
    calls = [i for i in await broker(kite.instruments, "NFO") if i.name == "NIFTY" and i.instrument_type == "CE"
             and i.expiry.isoformat() == day]
    if not calls:
        pytest.skip(f"no NIFTY contract expires on the sim's day {day}")
    call = min(calls, key=lambda i: abs(i.strike - 26000))
    desk.instruments[f"NFO:{call.tradingsymbol}"] = call

    def option(side: str, intent: str) -> m.OrderRequest:
        sig = m.Signal(id=f"exp-{intent}-{time.time_ns()}", user_id=USER, strategy_id="exp-1", strategy="manual",
                       exchange=m.Exchange.NFO, tradingsymbol=call.tradingsymbol, instrument_token=call.instrument_token,
                       transaction_type=m.TransactionType(side), quantity=call.lot_size, product=m.Product.NRML,
                       order_type=m.OrderType.MARKET, intent=intent, created_at=time.time_ns())
        return o.signal_requests(sig, call, -1)[0]

    async def positions_pass():
        return await check.run(from_broker((await broker(kite.positions)).net))

    def expired() -> list[dict]:
        return [t for t in journal.trades(USER) if t["order_id"].startswith("expiry:")]

    try:
        bought = await placing.place(desk, option("BUY", "entry"), "exp-1")
        await placing.wait_final(desk, [desk.book.by_order_id(bought)], 10)
        assert desk.tracker.held("exp-1", "NFO", call.tradingsymbol)[0] == call.lot_size
        sold = await placing.place(desk, option("SELL", "exit"), "exp-1")  # filled at the broker, not yet heard
        await positions_pass()
        assert not expired() and desk.tracker.held("exp-1", "NFO", call.tradingsymbol)[0] == call.lot_size
        await placing.wait_final(desk, [desk.book.by_order_id(sold)], 10)
        assert desk.tracker.held("exp-1", "NFO", call.tradingsymbol)[0] == 0

        await placing.wait_final(desk, [desk.book.by_order_id(await placing.place(desk, option("BUY", "entry"),
                                                                                   "exp-1"))], 10)
        await broker(kite.place_order, "regular", "NFO", call.tradingsymbol, "SELL", call.lot_size, "NRML", "MARKET",
                     market_protection=-1, tag="byhand-exp")  # sold in Kite: the broker lists nothing
        await positions_pass()
        assert not expired()  # the session runs: a difference (adopted after a second look), not an expiry
    finally:
        await kite.aclose()


async def test_a_contract_gone_from_every_list_is_adopted_under_the_token_kta_held_it_by(bus, sim, data_dir):
    """A position on a contract no list and no journal knows (an option leg filled after the last positions pass of
    its expiry day, before kta remembered contracts at their orders), the broker's positions no longer showing it.
    Its settlement is adopted under the token kta's position has, so the strategy's book is told (the expiry soak,
    seed 17: an outcome with token 0, named by an expired symbol, matched none of the strategy's symbols and its book
    kept -65 against a flat journal)."""
    desk, kite, journal = fresh_desk(sim, bus, data_dir)
    outcomes = await collected(bus, subjects.outcomes(USER), m.StrategyOutcome)
    check = CrossCheck(desk, ExerciseHandler(USER, journal))
    symbol, token = "NIFTY25JAN20000PE", 987_654
    try:
        desk.tracker.on_fill(strategy_id="condor-gone", exchange="NFO", tradingsymbol=symbol, transaction_type="SELL",
                             quantity=65, price=5000, instrument_token=token, product="NRML")
        assert desk.inst("NFO", symbol) is None and journal.contract("NFO", symbol) is None
        settled = Difference(exchange="NFO", tradingsymbol=symbol, product="NRML", kta=-65, broker=0)
        (adopted,) = await check._adopt(settled, None)
        assert (adopted["transaction_type"], adopted["quantity"]) == ("BUY", 65)
        (told,) = await eventually(lambda: [x for x in outcomes if x.strategy_id == "condor-gone"],
                                   what="the strategy told")
        assert (told.instrument_token, told.position) == (token, 0)
    finally:
        await kite.aclose()
