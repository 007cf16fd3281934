from datetime import date

from execution_worker.exercise import ExerciseHandler, OptionContract
from shared.trading.positions import PositionTracker
from shared.kite.models import Instrument
from shared.messages import Position, Product

from .kit import USER, Clock, journal

CONTRACTS = {
    "INFY26NOV1500CE": OptionContract(tradingsymbol="INFY26NOV1500CE", exchange="NFO", underlying="INFY",
                                      option_type="CE", strike=1500_00, expiry="2026-11-26", lot_size=400),
    "INFY26NOV1400PE": OptionContract(tradingsymbol="INFY26NOV1400PE", exchange="NFO", underlying="INFY",
                                      option_type="PE", strike=1400_00, expiry="2026-11-26", lot_size=400),
    "NIFTY26NOV25000CE": OptionContract(tradingsymbol="NIFTY26NOV25000CE", exchange="NFO", underlying="NIFTY",
                                        option_type="CE", strike=25000_00, expiry="2026-11-26", lot_size=75),
}


def pos(symbol, qty):
    return Position(tradingsymbol=symbol, exchange="NFO", quantity=qty, product="NRML", strategy_id="s1")


POSITIONS = [pos("INFY26NOV1500CE", -400), pos("INFY26NOV1400PE", 400), pos("NIFTY26NOV25000CE", 75)]
SPOTS = {"INFY": 1520_00, "NIFTY": 25100_00}


def test_warns_days_before_and_squares_off_itm_stock_options_after_the_cutoff(tmp_path):
    clock = Clock("2026-11-24 10:00:00")
    handler = ExerciseHandler(USER, journal(tmp_path, clock), clock=clock)
    review = handler.review(POSITIONS, CONTRACTS, SPOTS)
    assert len(review.warnings) == 1 and "INFY26NOV1500CE" in review.warnings[0] and review.square_offs == []
    assert handler.review(POSITIONS, CONTRACTS, SPOTS).warnings == []  # once a day
    clock.set("2026-11-26 14:29:59")
    review = handler.review(POSITIONS, CONTRACTS, SPOTS)
    assert review.square_offs == [] and len(review.warnings) == 1
    clock.set("2026-11-26 14:30:00")
    [order] = handler.review(POSITIONS, CONTRACTS, SPOTS).square_offs
    assert (order.tradingsymbol, order.transaction_type, order.quantity, order.order_type) == (
        "INFY26NOV1500CE", "BUY", 400, "MARKET")
    assert order.market_protection == -1 and isinstance(order.product, Product)  # placeable as built
    assert handler.review(POSITIONS, CONTRACTS, SPOTS).square_offs == []
    codes = [e["code"] for e in handler.journal.risk_events(USER)]
    assert codes == ["EXERCISE_WARNING", "EXERCISE_WARNING", "EXERCISE_SQUARE_OFF"]


def test_near_the_money_counts_and_index_options_are_left_alone(tmp_path):
    clock = Clock("2026-11-26 14:45:00")
    handler = ExerciseHandler(USER, journal(tmp_path, clock), clock=clock, itm_buffer_pct=1.0)
    review = handler.review(POSITIONS, CONTRACTS, {"INFY": 1412_00, "NIFTY": 26000_00})
    assert [o.tradingsymbol for o in review.square_offs] == ["INFY26NOV1400PE"]


def test_after_expiry_outcomes_are_booked_once_as_closing_trades(tmp_path):
    clock = Clock("2026-11-26 15:00:00")
    j = journal(tmp_path, clock)
    handler = ExerciseHandler(USER, j, clock=clock)
    settlement = {"INFY": 1520_00, "NIFTY": 24900_00}
    assert handler.settle(POSITIONS, CONTRACTS, settlement) == []  # market still open
    clock.set("2026-11-27 09:00:00")
    outcomes = {o.tradingsymbol: o for o in handler.settle(POSITIONS, CONTRACTS, settlement)}
    short_call, long_put, index_call = (outcomes[s] for s in ("INFY26NOV1500CE", "INFY26NOV1400PE", "NIFTY26NOV25000CE"))
    assert (short_call.outcome, short_call.value, short_call.delivery_quantity) == ("assigned", -400 * 20_00, -400)
    assert (long_put.outcome, long_put.value, long_put.delivery_quantity) == ("expired", 0, 0)
    assert (index_call.outcome, index_call.settlement, index_call.value) == ("expired", "cash", 0)
    assert handler.settle(POSITIONS, CONTRACTS, settlement) == []
    tracker = PositionTracker()
    for symbol, side, qty, price in (("INFY26NOV1500CE", "SELL", 400, 30_00), ("INFY26NOV1400PE", "BUY", 400, 5_00),
                                     ("NIFTY26NOV25000CE", "BUY", 75, 100_00)):
        tracker.on_fill(strategy_id="s1", exchange="NFO", tradingsymbol=symbol, transaction_type=side,
                        quantity=qty, price=price)
    for row in j.trades(USER):
        tracker.on_trade_row(row)
    assert all(p.quantity == 0 for p in tracker.positions())
    assert tracker.realised == 400 * (30_00 - 20_00) - 400 * 5_00 - 75 * 100_00
    assert {e["code"] for e in j.risk_events(USER)} == {"EXPIRY_ASSIGNED", "EXPIRY_EXPIRED"}


def test_contract_from_kite_instrument():
    inst = Instrument(instrument_token=1, exchange_token=1, tradingsymbol="INFY26NOV1500CE", name="INFY",
                      last_price=0.0, expiry=date(2026, 11, 26), strike=1500.0, tick_size=0.05, lot_size=400,
                      instrument_type="CE", segment="NFO-OPT", exchange="NFO")
    c = OptionContract.from_instrument(inst)
    assert (c.strike, c.expiry, c.settlement) == (1500_00, "2026-11-26", "physical")
    assert c.intrinsic(1520_00) == 20_00
