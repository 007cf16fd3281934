"""The sim's calendar, on in-process objects with a hand-moved clock: market hours and holidays (regular
orders refused while closed, AMOs queued and released at the open), end-of-day settlement (T+1
holdings of CNC buys, MIS square-off, NRML carry) and option expiry (ITM exercised at the closing
price, OTM worthless)."""

from __future__ import annotations

from datetime import date, datetime, time

import pytest

from kite_sim import portfolio
from kite_sim.broker import MARKET_CLOSED, Broker
from kite_sim.clock import SESSION_SECONDS, SimClock
from kite_sim.errors import KiteError
from kite_sim.faults import Faults
from kite_sim.instruments import Universe
from kite_sim.market import Market
from kite_sim.orders import paise
from kite_sim.settlement import settle_day
from shared.ist import IST
from shared.market_calendar import CALENDAR, MarketCalendar

USER = "CAL01"


class ManualWall:
    def __init__(self) -> None:
        self.t = 2_000_000.0

    def __call__(self) -> float:
        return self.t


def buy(broker, inst, qty, product="CNC", variety="regular", side="BUY", **extra):
    form = {"exchange": inst.exchange, "tradingsymbol": inst.tradingsymbol, "transaction_type": side,
            "order_type": "MARKET", "market_protection": "5", "product": product, "quantity": str(qty), **extra}
    return broker.place(USER, variety, form)


def test_market_hours_holidays_and_amo():
    """The exchange calendar by default: Tuesday 3 Mar 2026 (Holi) is an NSE/BSE holiday."""
    monday, holiday = date(2026, 3, 2), date(2026, 3, 3)
    assert holiday in CALENDAR.holidays
    wall = ManualWall()
    start = datetime(2026, 3, 2, 8, 0, tzinfo=IST)
    clock = SimClock(speed=1.0, wall=wall, hours=True, start_at=start)
    market = Market(Universe(monday), clock, seed=3)
    updates = []
    broker = Broker(market, Faults(), lambda uid, o: updates.append(o))
    broker.account(USER)
    infy = market.universe.by_key["NSE:INFY"]

    assert not clock.is_open() and clock.today() == date(2026, 2, 27)  # Monday 08:00: Friday's close stands
    before = market.price(infy)
    wall.t += 1800
    assert market.price(infy) == before  # no ticks while closed
    with pytest.raises(KiteError, match="Markets are closed"):
        buy(broker, infy, 1)
    amo = buy(broker, infy, 1, variety="amo")
    assert amo.status == "AMO REQ RECEIVED" and amo.filled_quantity == 0
    broker.modify(USER, "amo", amo.order_id, {"quantity": "2"})
    assert amo.status == "AMO REQ RECEIVED" and amo.quantity == 2
    broker.tick()
    assert amo.filled_quantity == 0

    wall.t += 3600 + 20 * 60  # 09:50: open
    assert clock.is_open() and clock.today() == monday
    broker.tick()
    statuses = [h["status"] for h in amo.history]
    assert statuses.index("AMO REQ RECEIVED") < statuses.index("OPEN PENDING") < statuses.index("COMPLETE")
    assert any(u["order_id"] == amo.order_id and u["status"] == "COMPLETE" for u in updates)
    assert buy(broker, infy, 1).status == "COMPLETE"  # regular orders trade in hours

    wall.t += 6 * 3600  # 15:50: closed again
    assert not clock.is_open()
    with pytest.raises(KiteError, match=MARKET_CLOSED[:20]):
        buy(broker, infy, 1)
    wall.t += 24 * 3600  # Tuesday 15:50, a holiday; and Tuesday 10:00 is closed too
    assert not clock.is_open() and clock.today() == monday
    wall.t -= 6 * 3600
    assert not clock.is_open()
    with pytest.raises(KiteError, match="Markets are closed"):  # Kite takes no regular order on a holiday
        buy(broker, infy, 1)
    wall.t += 24 * 3600  # Wednesday 09:50
    assert clock.is_open() and clock.today() == date(2026, 3, 4)


WEEKDAYS = MarketCalendar.fixed()  # these weeks are laid out on weekdays alone (3 Mar 2026 trades)


def test_the_exchange_calendar_shapes_history_expiries_and_the_session_walk():
    """No day's history on a holiday, the sessions walk over it, and an expiry on it moves a day earlier."""
    monday = date(2026, 3, 2)  # Tuesday 3 (Holi) and Tuesday 31 March 2026 are NSE/BSE holidays
    wall = ManualWall()
    clock = SimClock(speed=1.0, start_date=monday, wall=wall)
    market = Market(Universe(monday), clock, seed=3)
    wall.t += SESSION_SECONDS + 60  # a whole session later: Wednesday 4, the holiday skipped
    assert clock.today() == date(2026, 3, 4)
    infy = market.universe.by_key["NSE:INFY"]
    days = [row[0][:10] for row in market.candles(infy, datetime(2026, 2, 26, tzinfo=IST),
                                                   datetime(2026, 3, 5, tzinfo=IST), 86400, False)]
    assert days == ["2026-02-26", "2026-02-27", "2026-03-02", "2026-03-04"]
    expiries = {i.expiry for i in market.universe.by_token.values() if i.underlying == "NIFTY" and i.expiry}
    assert date(2026, 3, 2) in expiries and date(2026, 3, 3) not in expiries  # the weekly, a day early
    assert date(2026, 3, 30) in expiries and date(2026, 3, 31) not in expiries  # the monthly, a day early


def test_a_shortened_session_closes_the_market_at_its_close():
    monday = date(2026, 3, 2)
    calendar = MarketCalendar.fixed(special_closes={monday: time(13, 0)})
    wall = ManualWall()
    clock = SimClock(speed=1.0, wall=wall, hours=True, start_at=datetime(2026, 3, 2, 12, 50, tzinfo=IST),
                     calendar=calendar)
    market = Market(Universe(monday, calendar), clock, seed=3)
    broker = Broker(market, Faults(), lambda uid, o: None)
    infy = market.universe.by_key["NSE:INFY"]
    assert clock.is_open() and buy(broker, infy, 1).status == "COMPLETE"
    wall.t += 15 * 60  # 13:05
    assert not clock.is_open() and clock.now() == (monday, 3 * 3600 + 45 * 60)  # the 13:00 close stands
    with pytest.raises(KiteError, match="Markets are closed"):
        buy(broker, infy, 1)


def settled_broker(day: date, **overrides):
    wall = ManualWall()
    clock = SimClock(speed=1.0, start_date=day, wall=wall, calendar=WEEKDAYS)
    market = Market(Universe(day, WEEKDAYS), clock, seed=5)
    market.overrides.update(overrides)
    broker = Broker(market, Faults(), lambda uid, o: None, settle_day)
    return broker, market, wall


def next_day(broker, wall) -> None:
    wall.t += SESSION_SECONDS
    broker.tick()


def test_cnc_buys_become_holdings_at_t_plus_1_and_intraday_positions_settle():
    broker, market, wall = settled_broker(date(2026, 3, 2))
    acc = broker.account(USER, 10_00_000_00)
    infy, sbin, tcs = (market.universe.by_key[f"NSE:{s}"] for s in ("INFY", "SBIN", "TCS"))
    fut = next(i for i in market.universe.by_token.values() if i.instrument_type == "FUT" and i.underlying == "NIFTY")
    cnc = buy(broker, infy, 10)
    mis = buy(broker, sbin, 20, product="MIS")
    nrml = buy(broker, fut, fut.lot_size, product="NRML")
    resting = broker.place(USER, "regular", {"exchange": "NSE", "tradingsymbol": "TCS", "transaction_type": "BUY",
                                             "order_type": "LIMIT", "price": f"{market.price(tcs) * 0.9:.1f}",
                                             "product": "CNC", "quantity": "1"})
    assert resting.status == "OPEN"
    wall.t += 600
    close = {i.instrument_token: paise(market.price(i, date(2026, 3, 2), SESSION_SECONDS)) for i in (sbin, fut)}
    cash = acc.opening_balance - cnc.filled_value - mis.filled_value - nrml.filled_value
    next_day(broker, wall)

    assert resting.status == "CANCELLED" and not acc.orders and not acc.trades  # a fresh order book
    h = acc.holdings[infy.instrument_token]
    assert (h.quantity, h.t1_quantity, h.average) == (0, 10, cnc.filled_value // 10)
    assert set(acc.positions) == {(fut.instrument_token, "NRML")}
    carried = acc.positions[(fut.instrument_token, "NRML")]
    assert carried.overnight_quantity == fut.lot_size and carried.buy_value == nrml.filled_value  # at its cost
    assert carried.overnight_price == close[fut.instrument_token]  # and remembered at the close
    expected = cash + 20 * close[sbin.instrument_token] + fut.lot_size * close[fut.instrument_token]
    assert acc.opening_balance == expected  # MIS squared off and NRML marked at the close

    more = buy(broker, fut, fut.lot_size, product="NRML")  # the next day: net = carried + today's, day = today's
    views = portfolio.positions(market, acc)
    net = next(r for r in views["net"] if r["instrument_token"] == fut.instrument_token)
    day = next(r for r in views["day"] if r["instrument_token"] == fut.instrument_token)
    assert (net["quantity"], net["overnight_quantity"], day["quantity"]) == (2 * fut.lot_size, fut.lot_size, fut.lot_size)
    assert day["buy_value"] == more.filled_value / 100

    next_day(broker, wall)
    assert (h.quantity, h.t1_quantity) == (10, 0)  # T+1: settled into the demat holding


def test_an_order_placed_before_the_loop_notices_the_new_day_belongs_to_the_new_day():
    """The clock walks from 15:30 straight into the next 09:15; an order that arrives before the market loop's
    next tick rolls the day first: numbered, booked and filled as the new day's (it was the old day's, then
    settled away with the old book: missing from the new day's order book, its position carried as overnight)."""
    broker, market, wall = settled_broker(date(2026, 3, 2))
    acc = broker.account(USER, 10_00_000_00)
    fut = next(i for i in market.universe.by_token.values() if i.instrument_type == "FUT" and i.underlying == "NIFTY")
    wall.t += SESSION_SECONDS + 5  # no broker.tick(): the loop has not run since the close
    late = buy(broker, fut, fut.lot_size, product="NRML")
    assert late.order_id.startswith("260303") and late.status == "COMPLETE"
    assert acc.orders.get(late.order_id) is late and [t.order.order_id for t in acc.trades] == [late.order_id]
    carried = acc.positions[(fut.instrument_token, "NRML")]
    assert (carried.overnight_quantity, carried.buy_quantity) == (0, fut.lot_size)  # today's, not carried
    broker.tick()  # the loop's tick after it: nothing left to roll
    assert acc.orders.get(late.order_id) is late


@pytest.mark.parametrize("spot, itm_strike_offset", [(26000.0, -200)])
def test_option_expiry_itm_exercised_otm_worthless(spot, itm_strike_offset):
    expiry = date(2026, 3, 3)  # a Tuesday: NIFTY's weekly expiry
    broker, market, wall = settled_broker(expiry, NIFTY=spot)
    acc = broker.account(USER, 50_00_000_00)
    chain = {(i.strike, i.instrument_type): i for i in market.universe.by_token.values()
             if i.underlying == "NIFTY" and i.expiry == expiry}
    itm_call = chain[(spot + itm_strike_offset, "CE")]
    otm_call = chain[(spot + 100, "CE")]
    itm_put_short = chain[(spot + 100, "PE")]
    orders = [buy(broker, itm_call, itm_call.lot_size, product="NRML"),
              buy(broker, otm_call, otm_call.lot_size, product="NRML"),
              buy(broker, itm_put_short, itm_put_short.lot_size, product="NRML", side="SELL")]
    assert all(o.status == "COMPLETE" for o in orders)
    flow = -orders[0].filled_value - orders[1].filled_value + orders[2].filled_value
    start = acc.opening_balance
    next_day(broker, wall)

    assert not acc.positions  # every expired contract is closed
    lot = itm_call.lot_size
    exercised = lot * paise(-itm_strike_offset) - lot * paise(100.0)  # long ITM call in, short ITM put out
    assert acc.opening_balance == start + flow + exercised  # the OTM call expired worthless
    with pytest.raises(KiteError, match="expired"):
        buy(broker, itm_call, lot, product="NRML")


def test_new_contracts_are_listed_as_days_pass_with_stable_tokens():
    start = date(2026, 3, 2)
    broker, market, wall = settled_broker(start)
    universe = market.universe
    before = {i.key: i.instrument_token for i in universe.by_token.values()}
    first_weekly = min(i.expiry for i in universe.by_token.values() if i.underlying == "NIFTY" and i.expiry)
    for _ in range(6):
        next_day(broker, wall)
    assert universe.today == date(2026, 3, 10)
    after = {i.key: i.instrument_token for i in universe.by_token.values()}
    assert all(after[k] == t for k, t in before.items())  # listed contracts keep their tokens
    assert len(set(after.values())) == len(after)  # and new ones get fresh tokens
    expiries = {i.expiry for i in universe.by_token.values() if i.underlying == "NIFTY" and i.expiry}
    assert date(2026, 3, 24) in expiries and len(after) > len(before)  # a new weekly came into the window
    listed = {row.split(",")[2] for row in universe.csv("NFO").splitlines()[1:]}
    expired = {i.tradingsymbol for i in universe.by_token.values() if i.expiry and i.expiry < universe.today}
    assert first_weekly < universe.today and expired and not (listed & expired)  # expired contracts leave the dump

    # a sim restarted from its start date rolls to the same day and assigns the same tokens
    _, replayed, _ = settled_broker(start)
    replayed.roll_universe(date(2026, 3, 10))
    assert {i.key: i.instrument_token for i in replayed.universe.by_token.values()} == after


def test_a_margin_answer_is_priced_at_one_moment():
    """Basket margins price each order alone and then the basket together; at 60x the market moved between the
    two (a lone short call: initial 114,717.43, final 114,796.83 in a CI run). Inside ``frozen`` the clock holds."""
    monday = date(2026, 3, 2)
    wall = ManualWall()
    clock = SimClock(speed=60.0, start_date=monday, wall=wall)
    market = Market(Universe(monday), clock, seed=3)
    call = next(i for i in market.universe.by_token.values() if i.underlying == "NIFTY" and i.instrument_type == "CE")
    short = [{"exchange": call.exchange, "tradingsymbol": call.tradingsymbol, "transaction_type": "SELL",
              "product": "NRML", "order_type": "MARKET", "quantity": call.lot_size}]
    account = Broker(market, Faults(), lambda uid, o: None).account("DEMO01")
    with clock.frozen():
        before = clock.now()
        orders, final = portfolio.basket_margin(market, account, short, False)
        wall.t += 600  # ten market hours' worth of wall time while the answer is computed
        assert clock.now() == before
        _, again = portfolio.basket_margin(market, account, short, False)
    assert orders[0]["total"] == final == again
    assert clock.now() != before  # and time goes on after
