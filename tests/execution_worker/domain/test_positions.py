import random

from hypothesis import given, settings, strategies as st

from shared.kite.models import Position as KitePosition

from shared.trading.positions import PositionTracker, from_broker


def test_tracker_fifo_realised_average_m2m_and_exposure():
    t = PositionTracker()
    t.on_fill(strategy_id="s1", exchange="NSE", tradingsymbol="INFY", transaction_type="BUY", quantity=10,
              price=150000, instrument_token=1)
    t.on_fill(strategy_id="s1", exchange="NSE", tradingsymbol="INFY", transaction_type="BUY", quantity=5,
              price=151003, instrument_token=1)
    closed = t.on_fill(strategy_id="s1", exchange="NSE", tradingsymbol="INFY", transaction_type="SELL",
                       quantity=12, price=152000, instrument_token=1)
    assert [(c.quantity, c.entry_price, c.pnl) for c in closed] == [(10, 150000, 20000), (2, 151003, 1994)]
    t.mark(1, 150500)
    [p] = t.positions()
    assert (p.quantity, p.average_price, p.realised, p.unrealised) == (3, 151003, 21994, 3 * (150500 - 151003))
    assert t.exposure == 3 * 150500 and t.exposure_by_strategy() == {"s1": 451500}
    t.on_fill(strategy_id="s2", exchange="NSE", tradingsymbol="INFY", transaction_type="SELL", quantity=7,
              price=150000, instrument_token=1)
    assert t.net_quantity("NSE", "INFY") == -4
    assert t.open_tokens() == {1}


def test_reversal_opens_the_remainder_the_other_way():
    t = PositionTracker()
    t.on_fill(strategy_id="s1", exchange="NFO", tradingsymbol="NIFTY26NOVFUT", transaction_type="BUY",
              quantity=50, price=2400000)
    t.on_fill(strategy_id="s1", exchange="NFO", tradingsymbol="NIFTY26NOVFUT", transaction_type="SELL",
              quantity=75, price=2410000)
    [p] = t.positions()
    assert (p.quantity, p.average_price, p.realised) == (-25, 2410000, 50 * 10000)


def test_the_accounts_own_positions_are_kept_per_product_a_strategys_per_instrument():
    t = PositionTracker()
    fill = dict(exchange="NFO", tradingsymbol="NIFTY26D1526000CE", transaction_type="BUY", quantity=65, price=10000,
                instrument_token=9)
    t.on_fill(strategy_id="", product="MIS", **fill)  # adopted from trades placed in Kite: intraday, then carry-forward
    t.on_fill(strategy_id="", product="NRML", **fill)
    assert sorted((p.strategy_id, p.product, p.quantity) for p in t.positions()) == [("", "MIS", 65), ("", "NRML", 65)]
    assert t.held("", "NFO", fill["tradingsymbol"], "NRML") == (65, 10000)
    assert t.held("", "NFO", fill["tradingsymbol"]) == (130, 10000)  # every product's together
    t.on_fill(strategy_id="s1", product="MIS", **fill)
    t.on_fill(strategy_id="s1", product="MIS", **{**fill, "transaction_type": "SELL"})
    t.on_fill(strategy_id="s1", product="NRML", **fill)  # a strategy reopens from flat in another product: one position
    assert [(p.product, p.quantity) for p in t.positions() if p.strategy_id == "s1"] == [("NRML", 65)]


def test_from_broker_converts_rupees_to_paise_exactly():
    kite = KitePosition(tradingsymbol="INFY", exchange="NSE", instrument_token=1, product="MIS", quantity=-3,
                        average_price=1500.05, last_price=1499.95, pnl=0.3, m2m=0.3, realised=0.0, unrealised=0.3)
    [p] = from_broker([kite, ])
    assert (p.quantity, p.average_price, p.last_price, p.pnl) == (-3, 150005, 149995, 30)
    [q] = from_broker([{"tradingsymbol": "TCS", "exchange": "NSE", "quantity": 2, "average_price": 3000.1}])
    assert (q.quantity, q.average_price) == (2, 300010)


fill_lists = st.lists(st.tuples(st.sampled_from(["BUY", "SELL"]), st.integers(1, 50), st.integers(1, 10**7)),
                      min_size=1, max_size=40)


@settings(max_examples=200, derandomize=True)
@given(fill_lists, st.integers(1, 10**7))
def test_pnl_is_exact_cash_flow_once_marked(fills, last):
    """Realised + unrealised at the last price equals the cash flow of all fills plus the open
    quantity valued at that price — to the paisa, for any fill sequence (reversals included) —
    and the running totals equal the per-position figures."""
    t = PositionTracker()
    for i, (side, qty, price) in enumerate(fills):
        t.on_fill(strategy_id="s", exchange="NSE", tradingsymbol="X", transaction_type=side, quantity=qty,
                  price=price, instrument_token=7)
        t.mark(7, price + i)
    t.mark(7, last)
    [p] = t.positions()
    assert t.realised + t.unrealised == p.sell_value - p.buy_value + p.quantity * last
    assert (t.realised, t.unrealised, t.exposure) == (p.realised, p.unrealised, abs(p.quantity) * last)
    assert p.quantity == p.buy_quantity - p.sell_quantity


marks_and_fills = st.lists(st.one_of(
    st.tuples(st.just("fill"), st.sampled_from(["s1", "s2"]), st.sampled_from([1, 2]), st.sampled_from(["BUY", "SELL"]),
              st.integers(1, 40), st.integers(1, 300_00)),
    st.tuples(st.just("mark"), st.sampled_from([1, 2]), st.integers(1, 300_00)),
), max_size=60)


@settings(max_examples=80, deadline=None, derandomize=True, database=None)
@given(events=marks_and_fills)
def test_running_totals_and_average_price_equal_a_recomputation(events):
    """The tracker keeps realised / unrealised / exposure incrementally (a mark moves only the unrealised P&L
    and the nets' exposure) and the average price in integers: both equal a recomputation from the books."""
    from fractions import Fraction

    t = PositionTracker()
    for ev in events:
        if ev[0] == "fill":
            _, strategy_id, token, side, qty, price = ev
            t.on_fill(strategy_id=strategy_id, exchange="NSE", tradingsymbol=f"S{token}", transaction_type=side,
                      quantity=qty, price=price, instrument_token=token)
        else:
            t.mark(ev[1], ev[2])
        held = list(t._held.values())
        assert t.realised == sum(h.book.realised for h in held)
        assert t.unrealised == sum(h.book.unrealised(h.last_price) for h in held)
        assert t.exposure == sum(abs(n.quantity) * n.last_price for n in t._nets.values())
        for h in held:
            b = h.book
            assert b.average_price() == (round(Fraction(b.cost, b.quantity)) if b.quantity else 0)


def test_exposure_by_symbol_and_strategy_are_kept_on_each_fill_and_mark():
    """A signal's risk reads one symbol's and one strategy's exposure in O(1) (issue #18): what the tracker keeps
    on each fill and mark equals, at every step, the sum over its positions that it replaced."""
    rng = random.Random(18)
    t = PositionTracker()
    symbols = [("NSE", "INFY", 1), ("NSE", "TCS", 2), ("NFO", "NIFTY26NOVFUT", 3)]
    for step in range(600):
        exchange, symbol, token = rng.choice(symbols)
        if rng.random() < 0.3:
            t.mark(token, rng.randint(1, 300_000))
        else:
            t.on_fill(strategy_id=rng.choice(["s1", "s2", "s3", ""]), exchange=exchange, tradingsymbol=symbol,
                      transaction_type=rng.choice(["BUY", "SELL"]), quantity=rng.randint(1, 20),
                      price=rng.randint(1, 300_000), instrument_token=token, product=rng.choice(["MIS", "NRML", ""]))
        for _, name, _ in symbols:
            assert t.at_risk_of(name) == sum(n.at_risk for n in t._nets.values() if n.tradingsymbol == name), step
        for sid in ("s1", "s2", "s3", ""):
            assert t.exposure_of(sid) == sum(abs(h.book.quantity) * h.last_price
                                             for (owner, *_), h in t._held.items() if owner == sid), step
    assert t.at_risk == sum(t.at_risk_by_symbol().values())
