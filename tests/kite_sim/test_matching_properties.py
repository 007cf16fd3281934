"""Properties of the matching engine, on in-process ``Broker`` / ``Market`` objects with a market clock the
test moves by hand (hypothesis, derandomized, small example counts):

- positions equal the sum of fills, and every order's filled quantity the sum of its trades;
- margin is never negative, and an order is only accepted when its margin fits the funds available;
- no fill is outside the order's limit, and no stop order starts filling before its trigger is hit;
- P&L identity: realised + unrealised = the cash flow of the fills + open quantity at the last price;
- a large order fills partially against the simulated depth, level by level, and stays OPEN.
"""

from __future__ import annotations

import copy

from datetime import date, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kite_sim import portfolio, risk
from kite_sim.broker import Broker
from kite_sim.clock import SimClock, session_open
from kite_sim.faults import Faults
from kite_sim.instruments import Universe
from kite_sim.market import Market
from kite_sim.orders import paise
from shared.ist import IST

DAY = date(2026, 3, 2)  # a Monday
UNIVERSE = Universe(DAY)
USER = "PROP01"
PROPS = settings(max_examples=40, derandomize=True, deadline=None, database=None,
                 suppress_health_check=[HealthCheck.too_slow])


class ManualWall:
    """The wall clock the sim's market clock reads: moved only by the test."""

    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def make(funds: int = 30_00_000_00):
    wall = ManualWall()
    clock = SimClock(speed=1.0, start_date=DAY, wall=wall)
    market = Market(UNIVERSE, clock, seed=13)
    updates: list[dict] = []
    broker = Broker(market, Faults(), lambda uid, o: updates.append(o))
    broker.account(USER, funds)
    return broker, market, wall


def pick_instruments():
    fut = next(i for i in UNIVERSE.by_token.values() if i.instrument_type == "FUT" and i.underlying == "NIFTY")
    ce = next(i for i in UNIVERSE.by_token.values() if i.instrument_type == "CE" and i.underlying == "NIFTY"
              and i.strike == 26000.0 and i.expiry == fut.expiry)
    return [UNIVERSE.by_key["NSE:INFY"], UNIVERSE.by_key["NSE:SBIN"], fut, ce]


INSTRUMENTS = pick_instruments()

place_action = st.fixed_dictionaries({
    "act": st.just("place"),
    "inst": st.integers(0, len(INSTRUMENTS) - 1),
    "side": st.sampled_from(["BUY", "SELL"]),
    "type": st.sampled_from(["MARKET", "LIMIT", "SL", "SL-M"]),
    "product": st.sampled_from(["MIS", "NRML", "CNC"]),
    "lots": st.integers(1, 6),
    "ticks": st.integers(-30, 30),
    "validity": st.sampled_from(["DAY", "DAY", "IOC"]),
})
actions = st.lists(st.one_of(
    place_action,
    st.fixed_dictionaries({"act": st.just("wait"), "seconds": st.integers(1, 900)}),
    st.fixed_dictionaries({"act": st.just("cancel"), "nth": st.integers(0, 50)}),
    st.fixed_dictionaries({"act": st.just("modify"), "nth": st.integers(0, 50), "ticks": st.integers(-30, 30)}),
), min_size=3, max_size=30)


def order_form(a: dict, market: Market) -> dict:
    inst = INSTRUMENTS[a["inst"]]
    ltp = paise(market.price(inst))
    tick = paise(inst.tick_size)
    px = max(tick, ltp + a["ticks"] * tick)
    qty = a["lots"] * max(1, inst.lot_size) if inst.lot_size > 1 else a["lots"] * 5
    product = a["product"] if inst.instrument_type == "EQ" or a["product"] != "CNC" else "NRML"
    form = {"exchange": inst.exchange, "tradingsymbol": inst.tradingsymbol, "transaction_type": a["side"],
            "order_type": a["type"], "product": product, "quantity": str(qty), "validity": a["validity"]}
    if a["type"] == "MARKET":
        form["market_protection"] = "3"
    if a["type"] in ("LIMIT", "SL"):
        form["price"] = f"{px / 100:.2f}"
    if a["type"] in ("SL", "SL-M"):
        trigger = px if a["type"] == "SL-M" else (px - 2 * tick if a["side"] == "BUY" else px + 2 * tick)
        form["trigger_price"] = f"{max(tick, trigger) / 100:.2f}"
    return form


def stamp_to_market(market: Market, inst, stamp: str) -> float:
    at = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").replace(tzinfo=IST)
    return market.price(inst, at.date(), (at - session_open(at.date())).total_seconds())


def run(steps: list[dict], funds: int = 30_00_000_00):
    """Play the actions; check the per-step invariants; return the broker for the final checks."""
    broker, market, wall = make(funds)
    acc = broker.account(USER)
    placed = []
    for a in steps:
        if a["act"] == "wait":
            wall.t += a["seconds"]
            broker.tick()
        elif a["act"] == "place":
            form = order_form(a, market)
            before = risk.available(market, acc)
            as_was = copy.deepcopy(acc)  # F&O margin depends on what the account held and had working
            try:
                o = broker.place(USER, "regular", form)
            except Exception as e:  # noqa: BLE001 - synchronous refusals are fine; they must be KiteErrors
                assert type(e).__name__ == "KiteError", e
                continue
            placed.append(o)
            statuses = [h["status"] for h in o.history]
            inst = o.inst
            need = risk.order_need(market, as_was, inst, o.product, o.quantity,
                                   o.price or o.trigger_price or paise(market.price(inst)), o.transaction_type)
            if "REJECTED" not in statuses:
                pb_key = (inst.instrument_token, o.product)
                pb = acc.positions.get(pb_key)
                held_after = pb.quantity if pb else 0
                filled = o.filled_quantity if o.transaction_type == "BUY" else -o.filled_quantity
                held_before = held_after - filled
                reducing = (o.transaction_type == "SELL" and 0 < o.quantity <= held_before) or (
                    o.transaction_type == "BUY" and 0 < o.quantity <= -held_before)
                covered = risk.covered_by_holdings(acc, inst.instrument_token, o.product, o.transaction_type, o.quantity)
                assert reducing or covered or need <= before, (need, before, form)
            if "Insufficient funds" in (o.status_message or ""):
                assert need > before
        elif placed:
            o = placed[a["nth"] % len(placed)]
            try:
                if a["act"] == "cancel":
                    broker.cancel(USER, "regular", o.order_id)
                else:
                    tick = paise(o.inst.tick_size)
                    field = "trigger_price" if o.status == "TRIGGER PENDING" else "price"
                    value = max(tick, (o.trigger_price if field == "trigger_price" else o.price) + a["ticks"] * tick)
                    broker.modify(USER, "regular", o.order_id, {field: f"{value / 100:.2f}"})
            except Exception as e:  # noqa: BLE001
                assert type(e).__name__ == "KiteError", e
        check_invariants(broker, market)
    return broker, market


def check_invariants(broker: Broker, market: Market) -> None:
    acc = broker.account(USER)
    # positions = sum of fills
    sums: dict[tuple[int, str], list[int]] = {}
    for t in acc.trades:
        s = sums.setdefault((t.order.inst.instrument_token, t.order.product), [0, 0, 0, 0])
        i = 0 if t.order.transaction_type == "BUY" else 2
        s[i] += t.quantity
        s[i + 1] += t.quantity * t.price
    assert {k: [pb.buy_quantity, pb.buy_value, pb.sell_quantity, pb.sell_value] for k, pb in acc.positions.items()} == sums
    for o in acc.orders.values():
        mine = [t for t in acc.trades if t.order is o]
        assert o.filled_quantity == sum(t.quantity for t in mine) <= o.quantity
        assert o.filled_quantity + o.cancelled_quantity + o.pending_quantity <= o.quantity
        if o.status in ("COMPLETE",):
            assert o.filled_quantity == o.quantity
        # no fill outside the limit
        for t in mine:
            assert (t.price <= o.price) if o.transaction_type == "BUY" else (t.price >= o.price), (t.price, o.price)
        # no stop order fills before its trigger was hit
        if o.order_type in ("SL", "SL-M") and mine:
            rows = [h for h in o.history if h["status"] == "OPEN"]
            assert rows, "a stop order filled without being triggered"
            at = stamp_to_market(market, o.inst, rows[0]["exchange_update_timestamp"])
            trig = o.trigger_price / 100
            assert at >= trig if o.transaction_type == "BUY" else at <= trig, (at, trig, o.transaction_type)
    # margin never negative
    assert risk.utilised(market, acc) >= 0
    # P&L identity, in paise
    realised, unrealised = risk.pnl(market, acc)
    flow = sum((t.quantity * t.price) * (1 if t.order.transaction_type == "SELL" else -1) for t in acc.trades)
    marked = sum(pb.quantity * paise(market.price(market.universe.by_token[tok])) for (tok, _), pb in acc.positions.items())
    assert realised + unrealised == flow + marked
    for row in portfolio.positions(market, acc)["net"]:
        assert abs(row["realised"] + row["unrealised"] - row["pnl"]) < 0.011


@PROPS
@given(actions)
def test_random_order_flow_keeps_every_invariant(steps):
    run(steps)


@PROPS
@given(actions)
def test_tight_funds_reject_rather_than_overdraw(steps):
    broker, market = run(steps, funds=50_000_00)
    acc = broker.account(USER)
    assert acc.opening_balance == 50_000_00


@PROPS
@given(inst=st.integers(0, 2), levels=st.integers(0, 4), extra_lots=st.integers(1, 500), side=st.sampled_from(["BUY", "SELL"]))
def test_partial_fill_walks_the_depth(inst, levels, extra_lots, side):
    broker, market, _ = make(funds=10**12)
    i = INSTRUMENTS[inst]
    q = market.quote(i)
    book = q.depth_sell if side == "BUY" else q.depth_buy
    limit = book[levels][0]
    available = sum(qty for _, qty, _ in book[: levels + 1])
    lot = max(1, i.lot_size)
    qty = available + extra_lots * lot
    form = {"exchange": i.exchange, "tradingsymbol": i.tradingsymbol, "transaction_type": side, "order_type": "LIMIT",
            "product": "NRML" if i.instrument_type != "EQ" else "MIS", "quantity": str(qty), "price": f"{limit:.2f}"}
    i.freeze_quantity, freeze = 0, i.freeze_quantity  # a single order bigger than the book
    try:
        o = broker.place(USER, "regular", form)
    finally:
        i.freeze_quantity = freeze
    trades = broker.account(USER).trades
    assert o.status == "OPEN" and o.filled_quantity == available and o.pending_quantity == qty - available
    assert [(t.price, t.quantity) for t in trades] == [(paise(p), n) for p, n, _ in book[: levels + 1]]
