"""Rules of Kite the sim used to miss, on a real sim process with the official client: a fourth ticker
connection of one api_key is answered 429 (a bad token 403), and stop-loss orders whose trigger the
market has already passed, lies outside the circuit band or sits on the wrong side of the SL's limit are
refused with Kite's messages — at placement and when a pending stop is modified."""

from __future__ import annotations

import pytest
from kiteconnect.exceptions import InputException
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.kite_sim.kit import module_sim, paced, sim_log

pytestmark = pytest.mark.timeout(120)

sim_dir, sim = module_sim("rules", seed=29)
SPOT = 1500.0


@pytest.fixture
def pinned(sim):
    sim.admin("price", {"underlying": "INFY", "price": SPOT})
    yield
    sim.admin("price", {"underlying": "INFY", "price": None})


def upgrade_status(url: str) -> int:
    with pytest.raises(InvalidStatus) as refused:
        connect(url, open_timeout=10)
    return refused.value.response.status_code


def test_a_fourth_ticker_connection_is_answered_429(sim, sim_dir, kite):
    url = f"{sim.ws_root}?api_key={sim.api_key}&access_token={kite.access_token}"
    sockets = [connect(url, open_timeout=10) for _ in range(3)]
    try:
        for ws in sockets:
            ws.recv(timeout=5)  # live
        assert upgrade_status(url) == 429  # Kite's "too many connections", not a dead token
        assert upgrade_status(f"{sim.ws_root}?api_key={sim.api_key}&access_token=expired") == 403
    finally:
        for ws in sockets:
            ws.close()
    log = sim_log(sim_dir)
    assert "over the limit of 3 per api_key (429)" in log
    assert "without completing handshake" not in log  # the refusal is an answer, not a server error


def stop_status(kite, side: str, order_type: str, trigger: float, price: float | None = None) -> dict:
    oid = paced(lambda: kite.place_order("regular", "NSE", "INFY", side, 1, "MIS", order_type, price=price,
                                         trigger_price=trigger))
    return paced(lambda: kite.order_history(oid))[-1]


@pytest.mark.parametrize("side, order_type, trigger, price, message", [
    ("BUY", "SL", 1490.0, 1495.0, "Trigger price for stoploss buy orders should be higher than the last traded price."),
    ("BUY", "SL-M", 1500.0, None, "Trigger price for stoploss buy orders should be higher than the last traded price."),
    ("SELL", "SL", 1510.0, 1505.0, "Trigger price for stoploss sell orders should be lower than the last traded price."),
    ("SELL", "SL-M", 1500.0, None, "Trigger price for stoploss sell orders should be lower than the last traded price."),
])
def test_a_stop_the_market_already_passed_is_rejected(kite, pinned, side, order_type, trigger, price, message):
    last = stop_status(kite, side, order_type, trigger, price)
    assert (last["status"], last["status_message"]) == ("REJECTED", message)
    assert last["filled_quantity"] == 0


def test_a_stop_outside_the_circuit_band_is_rejected(kite, pinned):
    q = paced(lambda: kite.quote(["NSE:INFY"]))["NSE:INFY"]
    below = round(q["lower_circuit_limit"] - 50, 1)
    last = stop_status(kite, "SELL", "SL-M", below)
    assert last["status_message"] == "Trigger price for stoploss sell orders cannot be below the lower circuit price."
    above = round(q["upper_circuit_limit"] + 50, 1)
    last = stop_status(kite, "BUY", "SL-M", above)
    assert last["status_message"] == "Trigger price for stoploss buy orders cannot be above the upper circuit price."


def test_an_sl_limit_on_the_wrong_side_of_its_trigger_is_refused(kite, pinned):
    with pytest.raises(InputException, match="Trigger price can't be higher than price"):
        paced(lambda: kite.place_order("regular", "NSE", "INFY", "BUY", 1, "MIS", "SL", price=1510.0,
                                       trigger_price=1520.0))
    with pytest.raises(InputException, match="Trigger price can't be lesser than price"):
        paced(lambda: kite.place_order("regular", "NSE", "INFY", "SELL", 1, "MIS", "SL", price=1480.0,
                                       trigger_price=1470.0))


def test_valid_stops_rest_and_cannot_be_moved_past_the_market(kite, pinned):
    sell = stop_status(kite, "SELL", "SL", 1480.0, 1475.0)
    buy = stop_status(kite, "BUY", "SL-M", 1520.0)
    assert sell["status"] == buy["status"] == "TRIGGER PENDING"
    with pytest.raises(InputException, match="should be lower than the last traded price"):
        paced(lambda: kite.modify_order("regular", sell["order_id"], trigger_price=1505.0, price=1500.0))
    with pytest.raises(InputException, match="can't be lesser than price"):
        paced(lambda: kite.modify_order("regular", sell["order_id"], price=1490.0))
    paced(lambda: kite.modify_order("regular", sell["order_id"], trigger_price=1490.0, price=1485.0))  # tighter
    tightened = paced(lambda: kite.order_history(sell["order_id"]))[-1]
    assert (tightened["status"], tightened["trigger_price"], tightened["price"]) == ("TRIGGER PENDING", 1490.0, 1485.0)
    paced(lambda: kite.modify_order("regular", buy["order_id"], order_type="LIMIT", price=1499.0))  # a target
    assert paced(lambda: kite.order_history(buy["order_id"]))[-1]["order_type"] == "LIMIT"
    for oid in (sell["order_id"], buy["order_id"]):
        paced(lambda o=oid: kite.cancel_order("regular", o))


def test_an_options_circuit_band_always_holds_its_own_prices():
    """An option decaying through the band around its previous close: the band flexes, as the exchange's
    operating range does, so the day's low and high are inside it (a BUY LIMIT at 4.45 was refused "below
    the lower circuit limit of 8.20" while the option traded at 4.70)."""
    from kite_sim.instruments import Instrument as SimInstrument
    from kite_sim.market import Market

    option = SimInstrument(instrument_token=1, tradingsymbol="NIFTY26D0126050CE", name="NIFTY", exchange="NFO",
                           segment="NFO-OPT", instrument_type="CE", lot_size=65, strike=26050.0, underlying="NIFTY")
    lower, upper = Market._circuits(option, prev=16.40, band_pct=50.0, tick=0.05, low=4.70, high=16.90)
    assert lower <= 4.70 and upper >= 16.90 and lower > 0
    assert Market._circuits(option, prev=16.40, band_pct=50.0, tick=0.05, low=15.0, high=17.0) == (8.2, 24.6)
