"""Positions come from outcomes only: a signal in flight is never sent again, an exit is sized from
what was really filled, and a stop-loss fill, a square-off, a refusal or a rolled-back group leave
a strategy that believes exactly what the broker's book says (the bugs of #12: an "exit" on a flat
book opening a short, an iron condor "exit" after a rolled-back entry leaving a naked short put)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.messages import Exchange, Signal, StrategyOutcome, TransactionType
from tests.strategy_worker.kit import INFY, TCS, Desk, bars, feed, make, tick_at

BUY, SELL = TransactionType.BUY, TransactionType.SELL


def above_level_series():
    """A VWAP break up on volume at bar 25, then back across at bar 27."""
    closes = [100.0] * 25 + [102.0, 102.5, 99.0]
    return bars(closes, volumes=[1000] * 25 + [2500, 1000, 1000])


def test_an_entry_in_flight_is_not_sent_again_and_books_nothing():
    s = make("mean_reversion", {"period": 5, "entry_z": 1.0, "exit_z": 0.1})
    series = bars([100.0, 100.5, 99.5, 100.0, 100.2, 95.0, 94.0, 93.0, 92.0])
    out = feed(s, series)  # nobody answers: the entry stays in flight
    assert [(i, sig.intent) for i, sig in out] == [(5, "entry")]
    assert s.positions() == {} and [f["intent"] for f in s.in_flight()] == ["entry"]


def test_a_refused_entry_leaves_the_strategy_flat_and_free_to_try_again():
    s, desk = make("mean_reversion", {"period": 5, "entry_z": 1.0, "exit_z": 0.1}), Desk()
    series = bars([100.0, 100.5, 99.5, 100.0, 100.2, 95.0, 94.0, 93.0, 92.0])
    refused = []
    out = feed(s, series[:6])
    assert [sig.intent for _, sig in out] == ["entry"]
    refused += desk.refuse(s, out[0][1], "POSITION_SIZE", "above the limit")
    assert refused == [] and s.positions() == {} and s.in_flight() == []
    again = feed(s, series[6:7])  # the next bar still stretched: a fresh entry is allowed
    assert [sig.intent for _, sig in again] == ["entry"] and again[0][1].id != out[0][1].id


def test_the_exit_is_sized_from_the_filled_part_of_a_partly_filled_entry():
    s, desk = make("vwap_breakout", {"quantity": 10}), Desk()
    series = above_level_series()
    entry = feed(s, series[:26])[0][1]
    desk.fill(s, entry, qty=4)
    desk.cancel(s, entry, unfilled=6)
    assert s.positions() == {INFY: 4} and s.in_flight() == []
    out = feed(s, series[26:])
    assert [(sig.intent, sig.transaction_type, sig.quantity) for _, sig in out] == [("exit", SELL, 4)]


def test_after_a_stop_loss_fill_the_strategy_is_flat_and_sends_no_exit():
    s, desk = make("vwap_breakout", {"quantity": 150}), Desk()
    series = above_level_series()
    entry = feed(s, series[:26], desk)[0][1]
    assert s.positions() == {INFY: 150}
    desk.protective(s, entry, price=101.5)
    assert s.positions() == {}
    assert feed(s, series[26:]) == []  # the bug: an "exit" SELL 150 on a flat book opened a short


def test_an_external_square_off_reaches_the_strategy():
    s, desk = make("vwap_breakout", {"quantity": 50}), Desk()
    series = above_level_series()
    feed(s, series[:26], desk)
    desk.external(s, INFY, 0, "MIS auto square-off")
    assert s.positions() == {} and feed(s, series[26:]) == []


def test_outcomes_repeated_or_out_of_order_change_nothing():
    s, _desk = make("vwap_breakout", {"quantity": 10}), Desk()
    entry = feed(s, above_level_series()[:26])[0][1]
    fill = StrategyOutcome(user_id="DEMO01", strategy_id="s1", kind="filled", seq=5, signal_id=entry.id,
                           order_kind="entry", instrument_token=INFY, transaction_type=BUY, quantity=10,
                           price=10200, position=10, average_price=10200, trade_id="T1")
    stale = StrategyOutcome(user_id="DEMO01", strategy_id="s1", kind="filled", seq=4, signal_id=entry.id,
                            order_kind="entry", instrument_token=INFY, transaction_type=BUY, quantity=3,
                            price=10200, position=3, trade_id="T0")
    for o in (fill, fill, stale):
        s.apply(o)
    assert s.positions() == {INFY: 10} and s.in_flight() == []


def test_two_symbols_keep_two_books():
    s, desk = make("vwap_breakout", {"quantity": 7}, tokens=[INFY, TCS]), Desk()
    infy = above_level_series()
    tcs = bars([3000.0] * 25 + [3060.0, 3070.0, 3075.0], token=TCS, volumes=[1000] * 25 + [2500, 1000, 1000])
    sent = []
    for a, b in zip(infy, tcs):
        sent += feed(s, [a], desk) + feed(s, [b])  # TCS's entry is never answered
    assert [(sig.tradingsymbol, sig.intent) for _, sig in sent] == [("INFY", "entry"), ("TCS", "entry"),
                                                                    ("INFY", "exit")]
    assert s.positions() == {} and [f["symbol"] for f in s.in_flight()] == [TCS]
    assert s.instances[TCS].in_flight() and not s.instances[INFY].in_flight()


def test_an_exit_that_would_grow_the_position_is_refused_at_the_strategy():
    s, desk = make("vwap_breakout", {"quantity": 10}), Desk()
    inst = s.instances[INFY]
    bad = Signal(id="x1", user_id="DEMO01", strategy_id="s1", strategy="vwap_breakout", exchange=Exchange.NSE,
                 tradingsymbol="INFY", instrument_token=INFY, transaction_type=SELL, quantity=150, intent="exit")
    assert s._vet(inst, [bad]) == [] and s.refusals[-1][1].code == "NO_POSITION"
    feed(s, above_level_series()[:26], desk)  # long 10
    too_big = Signal(id="x2", user_id="DEMO01", strategy_id="s1", strategy="vwap_breakout", exchange=Exchange.NSE,
                     tradingsymbol="INFY", instrument_token=INFY, transaction_type=SELL, quantity=15, intent="exit")
    same_side = Signal(id="x3", user_id="DEMO01", strategy_id="s1", strategy="vwap_breakout", exchange=Exchange.NSE,
                       tradingsymbol="INFY", instrument_token=INFY, transaction_type=BUY, quantity=5, intent="exit")
    assert s._vet(inst, [too_big, same_side]) == []
    assert [r.code for _, r in list(s.refusals)[-2:]] == ["EXIT_GROWS", "EXIT_GROWS"]


# ---- the property: whatever happens, the strategy believes the fills --------------------------

EVENTS = st.lists(st.tuples(st.sampled_from(["bar", "fill", "partial", "refuse", "cancel", "external", "stop"]),
                            st.integers(0, 1), st.integers(-20, 20)), max_size=60)


@settings(max_examples=150, deadline=None)
@given(EVENTS)
def test_any_sequence_of_outcomes_leaves_each_position_equal_to_the_sum_of_its_fills(events):
    s, desk = make("mean_reversion", {"period": 5, "entry_z": 0.5, "exit_z": 0.4, "quantity": 5},
                   tokens=[INFY, TCS]), Desk()
    prices = {INFY: 100.0, TCS: 3000.0}
    start = {INFY: bars([0.0])[0].start, TCS: bars([0.0])[0].start}
    unanswered = []
    for kind, which, x in events:
        token = (INFY, TCS)[which]
        if kind == "bar":
            prices[token] *= 1 + x / 200
            start[token] += 300
            bar = bars([prices[token]], token=token, start=start[token])[0]
            tick_at(s, bar)
            unanswered += s.on_bar(bar)
            continue
        if kind == "external":
            desk.external(s, token, x)
            continue
        mine = [sig for sig in unanswered if sig.instrument_token == token]
        if not mine:
            continue
        sig = mine[0]
        unanswered.remove(sig)
        if kind == "fill":
            unanswered += desk.fill(s, sig)
        elif kind == "partial":
            unanswered += desk.fill(s, sig, qty=max(1, sig.quantity // 2))
            unanswered += desk.cancel(s, sig, sig.quantity - max(1, sig.quantity // 2))
        elif kind == "refuse":
            unanswered += desk.refuse(s, sig)
        elif kind == "cancel":
            unanswered += desk.cancel(s, sig, sig.quantity)
        elif kind == "stop":
            unanswered += desk.fill(s, sig) + desk.protective(s, sig, prices[token])
        for sig in unanswered:  # never two signals in flight on one instrument
            assert sum(1 for o in unanswered if o.instrument_token == sig.instrument_token) == 1
    assert s.positions() == {t: desk.held(s, t) for t in (INFY, TCS) if desk.held(s, t)}
    # the strategies never even try to send twice on an instrument or to grow a position with an exit
    assert not [r.code for _, r in s.refusals if r.code in ("IN_FLIGHT", "EXIT_GROWS", "NO_POSITION")]
