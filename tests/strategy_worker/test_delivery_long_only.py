"""India has no delivery short: a strategy trading shares in CNC (``intraday`` off) only buys to open and
sells only what it holds. The same signals in MIS go both ways, and F&O in NRML may sell to open.
(Kite refuses a CNC sale of shares not held, and the execution worker's risk check refuses it as
DELIVERY_SHORT: the strategy must not keep sending what can never be placed.)"""

from shared.messages import Product, TransactionType
from tests.strategy_worker.kit import NIFTY, Desk, bars, feed, make

BUY, SELL = TransactionType.BUY, TransactionType.SELL
UP_DOWN = [100.0] * 20 + [101.0, 103.0, 105.0, 107.0, 104.0, 100.0, 96.0, 92.0, 88.0]  # a golden, then a death cross


def signals(intraday: bool, tokens=None) -> list[tuple[str, TransactionType, Product]]:
    s = make("ema_crossover", {"fast": 2, "slow": 3, "intraday": intraday}, **({"tokens": tokens} if tokens else {}))
    series = bars(UP_DOWN, token=tokens[0]) if tokens else bars(UP_DOWN)
    return [(sig.intent, sig.transaction_type, sig.product) for _, sig in feed(s, series, Desk())]


def test_intraday_shares_go_short_after_the_exit():
    assert signals(intraday=True) == [("entry", BUY, Product.MIS), ("exit", SELL, Product.MIS),
                                      ("entry", SELL, Product.MIS)]


def test_delivery_shares_exit_and_do_not_open_a_short():
    assert signals(intraday=False) == [("entry", BUY, Product.CNC), ("exit", SELL, Product.CNC)]


def test_a_future_in_nrml_may_sell_to_open():
    out = signals(intraday=False, tokens=[NIFTY])
    assert [(i, side) for i, side, _ in out] == [("entry", BUY), ("exit", SELL), ("entry", SELL)]
    assert {p for _, _, p in out} == {Product.NRML}
