"""Property: whatever happens — fills of entries and exits, refusals and cancels (which fill nothing),
external changes at the broker adopted by the cross-check — every strategy's position equals the sum of
its journaled fills, in the live book, in the journal rebuilt after a restart, and after an adoption
kta's book equals the broker's without any strategy's position growing or flipping."""

from hypothesis import given, settings
from hypothesis import strategies as st

from execution_worker.outcomes import strategy_positions
from shared.messages import Position
from shared.trading.external import allocate, differences
from shared.trading.positions import PositionTracker

from .kit import USER, journal

STRATEGIES = ("a", "b", "c")
SYMBOLS = ("INFY", "TCS")
events = st.lists(st.one_of(
    st.tuples(st.just("fill"), st.sampled_from(STRATEGIES), st.sampled_from(SYMBOLS), st.sampled_from(["BUY", "SELL"]),
              st.integers(1, 50), st.integers(100_00, 200_00)),
    st.tuples(st.just("refused"), st.sampled_from(STRATEGIES), st.sampled_from(SYMBOLS)),
    st.tuples(st.just("cancelled"), st.sampled_from(STRATEGIES), st.sampled_from(SYMBOLS)),
    st.tuples(st.just("external"), st.sampled_from(SYMBOLS), st.integers(-80, 80), st.integers(100_00, 200_00)),
), max_size=40)


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(events=events)
def test_every_strategy_position_is_the_sum_of_its_fills(tmp_path_factory, events):
    j = journal(tmp_path_factory.mktemp("prop"))
    tracker = PositionTracker()
    fills: dict[tuple[str, str], int] = {}
    broker: dict[str, int] = {}
    n = 0

    def book(strategy_id: str, symbol: str, side: str, qty: int, price: int) -> None:
        nonlocal n
        n += 1
        j.record_trade(USER, trade_id=f"T{n}", order_id=f"O{n}", exchange="NSE", tradingsymbol=symbol,
                       instrument_token=1, transaction_type=side, quantity=qty, price=price, product="MIS",
                       fill_timestamp="2026-11-24 10:00:00", strategy_id=strategy_id)
        tracker.on_fill(strategy_id=strategy_id, exchange="NSE", tradingsymbol=symbol, transaction_type=side,
                        quantity=qty, price=price, instrument_token=1, product="MIS")
        signed = qty if side == "BUY" else -qty
        fills[(strategy_id, symbol)] = fills.get((strategy_id, symbol), 0) + signed

    for ev in events:
        if ev[0] == "fill":
            _, strategy_id, symbol, side, qty, price = ev
            book(strategy_id, symbol, side, qty, price)
            broker[symbol] = broker.get(symbol, 0) + (qty if side == "BUY" else -qty)
        elif ev[0] == "external":  # the broker's position moved outside kta: the cross-check adopts it
            _, symbol, change, price = ev
            broker[symbol] = broker.get(symbol, 0) + change
            at_broker = [Position(tradingsymbol=s, exchange="NSE", quantity=q) for s, q in broker.items()]
            for d in differences(tracker.positions(), at_broker):
                holders = {p.strategy_id: p.quantity for p in tracker.positions() if p.tradingsymbol == d.tradingsymbol}
                before = dict(holders)
                for strategy_id, qty in allocate(d.delta, holders):
                    book(strategy_id, d.tradingsymbol, "BUY" if qty > 0 else "SELL", abs(qty), price)
                for strategy_id, was in before.items():
                    now = tracker.held(strategy_id, "NSE", d.tradingsymbol)[0]
                    assert strategy_id == "" or (abs(now) <= abs(was) and now * was >= 0)  # never grown or flipped
            assert not differences(tracker.positions(), at_broker)  # kta's book = the broker's
        # refusals and cancels fill nothing: the books must not move
        for (strategy_id, symbol), qty in fills.items():
            assert tracker.held(strategy_id, "NSE", symbol)[0] == qty
    rebuilt = {(p["strategy_id"], p["tradingsymbol"]): p["quantity"]
               for p in strategy_positions(j, USER)["positions"]}
    assert {k: v for k, v in rebuilt.items() if v} == {k: v for k, v in fills.items() if v and k[0]}
