"""Option liquidity on a real sim with the official client: an iron condor's four legs — short strikes near the
money, long wings further out, one of them a cheap contract whose 2 % market protection is less than a
tick — fill at once as protected MARKET orders; books near the money are deep and one tick wide with the last
price at the touch, and thin out away from it; and the book is a function of the seed and the second."""

from __future__ import annotations

from datetime import date

import pytest

from kite_sim.clock import SimClock
from kite_sim.instruments import Universe
from kite_sim.market import Market
from tests.kite_sim.kit import module_sim, paced
from tests.simkit import PINNED

pytestmark = pytest.mark.timeout(120)

sim_dir, sim = module_sim("options", seed=37, extra=PINNED)  # an expiry day: the far wings are cheap
SPOT = 26000.0


@pytest.fixture(scope="module")
def chain(sim, kite):
    """The nearest NIFTY expiry's contracts by (strike, type), NIFTY pinned at 26000."""
    sim.admin("price", {"underlying": "NIFTY", "price": SPOT})
    nfo = [i for i in paced(lambda: kite.instruments("NFO")) if i["name"] == "NIFTY" and i["instrument_type"] in
           ("CE", "PE")]
    nearest = min(i["expiry"] for i in nfo)
    yield {(i["strike"], i["instrument_type"]): i for i in nfo if i["expiry"] == nearest}
    sim.admin("price", {"underlying": "NIFTY", "price": None})


def key(inst: dict) -> str:
    return f"NFO:{inst['tradingsymbol']}"


def test_an_iron_condor_fills_at_once(kite, chain):
    legs = [("BUY", chain[(SPOT + 600, "CE")]), ("BUY", chain[(SPOT - 600, "PE")]),  # the hedges first
            ("SELL", chain[(SPOT + 100, "CE")]), ("SELL", chain[(SPOT - 100, "PE")])]
    wings = paced(lambda: kite.ltp([key(legs[0][1]), key(legs[1][1])]))
    assert min(q["last_price"] for q in wings.values()) < 2.5  # a cheap wing: 2 % of it is under one tick
    for side, inst in legs:
        lots = 2 * inst["lot_size"]
        oid = paced(lambda s=side, i=inst, q=lots: kite.place_order("regular", "NFO", i["tradingsymbol"], s, q, "NRML",
                                                                     "MARKET", market_protection=-1))
        last = paced(lambda o=oid: kite.order_history(o))[-1]
        assert (last["status"], last["filled_quantity"]) == ("COMPLETE", lots), (inst["tradingsymbol"], last)
        limit = last["price"]  # the protection price the MARKET order became
        assert last["average_price"] <= limit if side == "BUY" else last["average_price"] >= limit


def test_books_are_deep_near_the_money_and_thin_far_from_it(kite, chain):
    near, far = chain[(SPOT, "CE")], chain[(SPOT + 700, "CE")]
    quotes = paced(lambda: kite.quote([key(near), key(far)]))
    sizes = {}
    for inst in (near, far):
        q = quotes[key(inst)]
        bid, ask = q["depth"]["buy"][0]["price"], q["depth"]["sell"][0]["price"]
        assert 0.05 <= bid < ask
        assert q["last_price"] in (bid, ask)  # the last trade printed at the touch
        sizes[inst["strike"]] = sum(d["quantity"] for d in q["depth"]["buy"] + q["depth"]["sell"])
    near_q = quotes[key(near)]
    assert round(near_q["depth"]["sell"][0]["price"] - near_q["depth"]["buy"][0]["price"], 2) == 0.05  # one tick
    assert sizes[near["strike"]] >= 100 * near["lot_size"]  # hundreds of lots near the money
    assert sizes[near["strike"]] > 1.5 * sizes[far["strike"]]  # about 2.4 times on average


class Wall:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def book_at(seed: int, second: float):
    wall = Wall()
    market = Market(Universe(date(2026, 3, 2)), SimClock(speed=1.0, start_date=date(2026, 3, 2), wall=wall), seed)
    wall.t += second
    inst = next(i for i in market.universe.by_token.values() if i.underlying == "NIFTY" and i.instrument_type == "CE"
                and i.strike == 26000.0)
    q = market.quote(inst)
    return q.depth_buy, q.depth_sell


def test_the_book_is_a_function_of_the_seed_and_the_second():
    assert book_at(5, 120) == book_at(5, 120)
    assert book_at(5, 120) != book_at(6, 120)
    assert book_at(5, 120) != book_at(5, 121)
