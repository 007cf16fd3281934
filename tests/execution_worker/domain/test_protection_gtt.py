"""The GTT a CNC/NRML position needs: legs in Kite's order, priced through their triggers, for what is
held less what exits close, outside Kite's 0.25 % band around the last price; and how a broker trigger
is compared with it."""

from datetime import date

from shared.kite.models import (
    Gtt,
    GttCondition,
    GttLeg,
    GttLegResult,
    GttOrderResult,
    Instrument,
)
from shared.messages import TransactionType
from shared.trading.protection import Protection
from shared.trading.protection_gtt import (
    fired_order,
    gtt_id_of,
    matches,
    specs,
    uses_gtt,
)

from .kit import USER


def infy(**kw) -> Protection:
    fields = {"stop": 147000, "target": 156000, "product": "CNC", **kw}
    return Protection(user_id=USER, strategy_id="s1", exchange="NSE", tradingsymbol="INFY", instrument_token=408065,
                      **fields)


def as_broker(s, last_price: float, status="active") -> Gtt:
    return Gtt(id=7, status=status, type=s.type,
               condition=GttCondition(exchange="NSE", tradingsymbol="INFY", last_price=last_price,
                                      trigger_values=[v / 100 for v in s.trigger_values]),
               orders=[GttLeg(transaction_type=s.side.value, quantity=s.quantity, price=p / 100) for p in s.prices])


def test_only_delivery_and_carry_forward_positions_use_a_gtt():
    assert uses_gtt("CNC") and uses_gtt("NRML") and not uses_gtt("MIS")


def test_a_long_gets_an_oco_stop_below_target_above_for_what_exits_leave():
    s = specs(infy(), held=5, closing=2, last_price=150000, inst=None, slippage_pct=0.5)[0]
    assert (s.type, s.side, s.quantity, s.trigger_values, s.kinds) == (
        "two-leg", TransactionType.SELL, 3, (147000, 156000), ("stop_loss", "target"))
    assert s.prices == (147000 - 735, 156000 - 780)  # LIMITs priced through the triggers: they fill
    assert [o["quantity"] for o in s.orders("CNC")] == [3, 3]


def test_a_short_buys_back_target_below_stop_above():
    p = infy(stop=153000, target=144000, product="NRML")
    s = specs(p, held=-4, closing=0, last_price=150000, inst=None, slippage_pct=0.5)[0]
    assert (s.side, s.trigger_values, s.kinds) == (TransactionType.BUY, (144000, 153000), ("target", "stop_loss"))
    assert s.prices == (144000 + 720, 153000 + 765)


def test_nothing_to_protect_without_a_position_a_stop_or_after_failing():
    assert specs(infy(), held=0, closing=0, last_price=150000, inst=None, slippage_pct=0.5) == []
    assert specs(infy(), held=5, closing=5, last_price=150000, inst=None, slippage_pct=0.5) == []
    assert specs(infy(stop=0), held=5, closing=0, last_price=150000, inst=None, slippage_pct=0.5) == []
    assert specs(infy(mode="failed"), held=5, closing=0, last_price=150000, inst=None, slippage_pct=0.5) == []


def test_a_trigger_inside_kites_band_moves_out_of_it_and_no_target_is_a_single():
    s = specs(infy(stop=149900, target=0), held=5, closing=0, last_price=150000, inst=None, slippage_pct=0.5)[0]
    assert s.type == "single" and s.trigger_values[0] <= 150000 - 375  # at least 0.25 % below the last price
    s = specs(infy(stop=149900, target=150100), held=5, closing=0, last_price=150000, inst=None, slippage_pct=0.5)[0]
    assert s.trigger_values[0] < 150000 * 0.9975 and s.trigger_values[1] > 150000 * 1.0025


def test_a_broker_trigger_matches_only_with_the_same_legs_and_quantity():
    s = specs(infy(), held=5, closing=0, last_price=150000, inst=None, slippage_pct=0.5)[0]
    assert matches(as_broker(s, 1500.0), s)
    assert not matches(as_broker(s, 1500.0, status="triggered"), s)
    assert not matches(as_broker(s, 1500.0), specs(infy(), held=3, closing=0, last_price=150000, inst=None,
                                                  slippage_pct=0.5)[0])
    assert not matches(as_broker(s, 1500.0), specs(infy(stop=146000), held=5, closing=0, last_price=150000,
                                                  inst=None, slippage_pct=0.5)[0])


def test_a_fired_leg_names_its_order_or_why_it_failed():
    s = specs(infy(), held=5, closing=0, last_price=150000, inst=None, slippage_pct=0.5)[0]
    g = as_broker(s, 1500.0, status="triggered")
    g.orders[1].result = GttLegResult(order_result=GttOrderResult(status="success", order_id="O1"))
    assert fired_order(g) == (1, "O1", "")
    g.orders[1].result = GttLegResult(order_result=GttOrderResult(status="failed", rejection_reason="circuit"))
    assert fired_order(g) == (1, "", "circuit")
    assert gtt_id_of({"gtt": 105099}) == gtt_id_of('{"app_id":12617,"gtt":105099}') == 105099
    assert gtt_id_of(None) == gtt_id_of({}) == gtt_id_of("x") == 0


def test_above_the_freeze_quantity_one_gtt_per_slice():
    opt = Instrument(instrument_token=1, exchange_token=1, tradingsymbol="NIFTY26D0826400CE", name="NIFTY",
                     last_price=0.0, expiry=date(2026, 12, 8), strike=26400.0, tick_size=0.05, lot_size=65,
                     instrument_type="CE", segment="NFO-OPT", exchange="NFO")
    p = infy(product="NRML", stop=8000, target=0)
    out = specs(p, held=1820, closing=0, last_price=10000, inst=opt, slippage_pct=0.5)
    assert [s.quantity for s in out] == [1755, 65] and {s.trigger_values for s in out} == {(8000,)}
