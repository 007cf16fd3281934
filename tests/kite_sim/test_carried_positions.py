"""A position carried overnight, over HTTP on a real sim with settlement, read with the official client:
Kite's ``pnl`` runs since the position's cost, ``m2m`` since the previous close (the relations of Kite's own
``positions.json`` mock: ``buy_m2m``/``sell_m2m`` value the carried quantity at ``close_price``, ``m2m =
sell_m2m − buy_m2m + quantity × last_price``), and the account's cash moves by the m2m only."""

from __future__ import annotations

from datetime import datetime

import pytest

from kite_sim.clock import CLOSE_SECONDS
from tests.helpers import eventually_blocking
from tests.kite_sim.kit import client, paced, start_sim_with

pytestmark = pytest.mark.timeout(120)
CENT = 0.011  # rupee fields are rounded to paise


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    s = start_sim_with(tmp_path_factory.mktemp("carried"), "--settle", seed=17)
    yield s
    s.stop()


def next_trading_day(sim) -> None:
    clock = sim.get("/sim/clock").json()
    now = datetime.strptime(clock["now"], "%Y-%m-%d %H:%M:%S")
    left = CLOSE_SECONDS - (now.hour * 3600 + now.minute * 60 + now.second)
    sim.admin("advance", {"seconds": left + 60})
    eventually_blocking(lambda: sim.get("/sim/clock").json()["trading_day"] != clock["trading_day"], 10,
             "the next trading day")


def row(kite, token: int, view: str = "net") -> dict | None:
    return next((p for p in paced(kite.positions)[view] if p["instrument_token"] == token), None)


def test_pnl_since_cost_and_m2m_since_the_close(sim):
    kite = client(sim)
    fut = max((i for i in paced(lambda: kite.instruments("NFO")) if i["instrument_type"] == "FUT"
               and i["name"] == "NIFTY"), key=lambda i: i["expiry"])
    token, lot, symbol = fut["instrument_token"], fut["lot_size"], fut["tradingsymbol"]
    sim.admin("price", {"underlying": "NIFTY", "price": 26000.0})
    oid = paced(lambda: kite.place_order("regular", "NFO", symbol, "BUY", 2 * lot, "NRML", "MARKET",
                                         market_protection=2))
    cost = paced(lambda: kite.order_history(oid))[-1]["average_price"]
    day1 = row(kite, token)
    assert day1["m2m"] == day1["pnl"]  # nothing carried yet: the same figure
    balance = paced(kite.margins)["equity"]["available"]["cash"]

    sim.admin("price", {"underlying": "NIFTY", "price": 26400.0})  # the day closes higher
    next_trading_day(sim)
    carried = eventually_blocking(lambda: (r := row(kite, token)) and r["overnight_quantity"] == 2 * lot and r, 10,
                       "the carried position")
    close, qty = carried["close_price"], 2 * lot
    assert close > cost
    assert carried["buy_value"] == pytest.approx(qty * cost, abs=CENT)  # the carried quantity at its cost ...
    assert carried["buy_m2m"] == pytest.approx(qty * close, abs=CENT)  # ... and at the previous close
    assert carried["average_price"] == pytest.approx(cost, abs=CENT)
    assert carried["pnl"] == pytest.approx((carried["last_price"] - cost) * qty, abs=CENT)
    assert carried["m2m"] == pytest.approx((carried["last_price"] - close) * qty, abs=CENT)
    assert carried["pnl"] - carried["m2m"] == pytest.approx((close - cost) * qty, abs=2 * CENT)
    assert row(kite, token, "day") is None  # nothing traded today yet
    cash = paced(kite.margins)["equity"]["available"]["cash"]
    assert cash == pytest.approx(balance + (close - cost) * qty, abs=CENT)  # yesterday's m2m went to cash

    sim.admin("price", {"underlying": "NIFTY", "price": 26200.0})
    sold = paced(lambda: kite.place_order("regular", "NFO", symbol, "SELL", qty, "NRML", "MARKET",
                                          market_protection=2))
    exit_px = paced(lambda: kite.order_history(sold))[-1]["average_price"]
    closed = row(kite, token)
    assert (closed["quantity"], closed["overnight_quantity"], closed["day_sell_quantity"]) == (0, qty, qty)
    assert closed["pnl"] == pytest.approx((exit_px - cost) * qty, abs=CENT)  # since cost
    assert closed["m2m"] == pytest.approx((exit_px - close) * qty, abs=CENT)  # since the close
    assert closed["m2m"] == pytest.approx(closed["sell_m2m"] - closed["buy_m2m"], abs=CENT)
    day = row(kite, token, "day")
    assert (day["quantity"], day["buy_quantity"], day["sell_quantity"]) == (-qty, 0, qty)
    assert day["pnl"] == day["m2m"]  # the day view has nothing carried
