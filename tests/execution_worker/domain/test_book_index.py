"""Issue #18: the order book's hot-path questions (working, unfinished, working_for, owing, of_signal) look only
at orders not settled yet — a day's final, fully journaled orders made every signal's risk and exit cost grow
with the day — and still answer exactly what a look at every order answers, in the book's order."""

import random

from shared.messages import OrderType, Product, TransactionType, Validity, Variety
from shared.trading.book import OrderBook
from shared.trading.order import (
    BrokerUpdate,
    Fill,
    Order,
    OrderState,
    Placed,
    Submitted,
    SubmitFailed,
)


def order(i: int, signal: int, strategy: str, symbol: str) -> Order:
    return Order(tag=f"t{i:05d}", day="2026-12-02", created_ts="2026-12-02 09:15:00", user_id="U", kind="entry",
                 signal_id=f"s{signal}", group_id="", strategy_id=strategy, leg=0, slice_no=0, exchange="NSE",
                 tradingsymbol=symbol, instrument_token=1, transaction_type=TransactionType.BUY,
                 order_type=OrderType.MARKET, product=Product.MIS, variety=Variety.REGULAR, validity=Validity.DAY,
                 quantity=10, price=0, trigger_price=0, market_protection=-1)


def scan(book: OrderBook):
    """What every question answers by looking at every order (the book before the index)."""
    every = list(book)
    return {
        "working": [o.tag for o in every if o.is_working],
        "unfinished": [o.tag for o in every if o.is_working or o.state is OrderState.INITIALIZED],
        "working_for": [o.tag for o in every if o.is_working and (o.strategy_id, o.tradingsymbol) == ("a", "INFY")],
        "owing": [o.tag for o in every if o.unjournaled],
        "owing_of": [o.tag for o in every if o.unjournaled and (o.strategy_id, o.tradingsymbol) == ("a", "INFY")],
        "of_signal": [o.tag for o in every if o.signal_id == "s3"],
    }


def asked(book: OrderBook):
    tags = lambda orders: [o.tag for o in orders]  # noqa: E731
    return {"working": tags(book.working()), "unfinished": tags(book.unfinished()),
            "working_for": tags(book.working_for("a", "NSE", "INFY")), "owing": tags(book.owing()),
            "owing_of": tags(book.owing(("a", "NSE", "INFY"))), "of_signal": tags(book.of_signal("s3"))}


def step(rng: random.Random, o: Order, ts: int) -> None:
    """One event of an order's life, as the broker and the journal bring them (refused moves are no-ops)."""
    match rng.randrange(7):
        case 0:
            o.apply(Submitted(ts=ts))
        case 1:
            o.apply(Placed(order_id=f"B{o.tag}", ts=ts))
        case 2:
            o.apply(SubmitFailed(reason="429", code="TooManyRequests", ts=ts))  # may be sent again
        case 3 | 4:
            state = rng.choice([OrderState.OPEN, OrderState.COMPLETE, OrderState.CANCELLED, OrderState.REJECTED])
            o.apply(BrokerUpdate(order_id=o.order_id or f"B{o.tag}", state=state, status=state.value,
                                 filled_quantity=min(o.quantity, o.filled_quantity + rng.randrange(0, 6)), ts=ts))
        case _:
            if o.unjournaled:
                o.apply(Fill(trade_id=f"{o.tag}-{ts}", quantity=o.unjournaled, price=100, timestamp="", ts=ts))


def test_the_questions_answer_as_a_look_at_every_order():
    rng = random.Random(18)
    book = OrderBook()
    orders = []
    for ts in range(1, 4000):
        if rng.random() < 0.15 or not orders:
            orders.append(book.add(order(len(orders), rng.randrange(6), rng.choice("ab"), rng.choice(["INFY", "TCS"]))))
        else:
            o = rng.choice(orders[-40:] if rng.random() < 0.9 else orders)  # late events on old orders too
            step(rng, o, ts)
            book.touch(o)  # as Desk.record does after every event
        if ts % 7 == 0:
            assert asked(book) == scan(book), ts
    assert len(book._open) < len(book)  # the settled ones are no longer looked at


def test_settled_orders_are_not_looked_at(monkeypatch):
    book = OrderBook()
    for i in range(2000):  # a long day's orders, every one final with its fill journaled
        o = book.add(order(i, i, "a", "INFY"))
        o.apply(Submitted(ts=1))
        o.apply(Placed(order_id=f"B{i}", ts=2))
        o.apply(BrokerUpdate(order_id=f"B{i}", state=OrderState.COMPLETE, status="COMPLETE", filled_quantity=10, ts=3))
        o.apply(Fill(trade_id=f"T{i}", quantity=10, price=100, timestamp="", ts=4))
        book.touch(o)
    working = book.add(order(2000, 2000, "a", "INFY"))
    working.apply(Submitted(ts=5))
    book.touch(working)
    assert [o.tag for o in book.unfinished()] == [working.tag]  # (settles the index)
    looked = []
    terminal = Order.is_terminal
    monkeypatch.setattr(Order, "is_terminal", property(lambda o: looked.append(o.tag) or terminal.fget(o)))
    assert [o.tag for o in book.working()] == [working.tag]
    assert [o.tag for o in book.working_for("a", "NSE", "INFY")] == [working.tag]
    assert book.owing() == [] and [o.tag for o in book.of_signal("s2000")] == [working.tag]
    assert len(looked) < 20  # one order still open, not the day's 2,001
