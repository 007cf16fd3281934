"""A CNC / NRML position in a backtest is protected as live (shared/trading/protection_gtt.py, kite_sim/gtt.py): a
GTT OCO placed from the entry's fill that outlives the close, fired along a later day's price path like kite_sim
fires it (the lower value when the price falls to it, the upper when it rises to it), placing one DAY LIMIT at the
leg's price that fills from the firing point — a stop leg's the market gapped past chased through it as the live
protector chases it; an exit deletes the GTT."""

from __future__ import annotations

from datetime import datetime, timedelta

from shared import ist
from shared import messages as m
from shared.kite.models import Instrument
from shared.messages import BacktestSpec
from strategy_worker.backtest.desk import Desk
from strategy_worker.backtest.job import execute
from strategy_worker.backtest.results import Recorder
from tests.backtest.kit import INFY, START, seed_store

DAY1 = int(datetime(START.year, START.month, START.day, 9, 15, tzinfo=ist.IST).timestamp())
DAY2 = DAY1 + 86400
STOP, TARGET = 147000, 152000
TOKEN = INFY.instrument_token


def carried_cnc() -> Desk:
    """5 INFY bought CNC on day 1 at ₹1,500 with a stop at ₹1,470 and a target at ₹1,520, held over the close."""
    desk = Desk("DEMO01", {TOKEN: INFY}, Recorder(capital=10_000_000), {TOKEN: 1500.0})
    desk.new_day(ist.day(DAY1))
    desk.now = DAY1
    sig = m.Signal(id="e1", user_id="DEMO01", strategy_id="s1", strategy="manual", exchange=m.Exchange.NSE,
                   tradingsymbol="INFY", instrument_token=TOKEN, transaction_type=m.TransactionType.BUY, quantity=5,
                   product=m.Product.CNC, order_type=m.OrderType.MARKET, stop_loss=STOP, target=TARGET,
                   intent="entry")
    assert [o.kind for o in desk.submit(sig)] == ["accepted", "filled"]
    assert bar(desk, DAY1 + 60, 150000, 151000, 148000, 149000) == []  # day 1: between the legs
    desk.now = DAY1 + 375 * 60 - 1
    assert desk.end_of_day() == []  # CNC: no square-off, no new order, the GTT stays at the broker
    desk.new_day(ist.day(DAY2))
    return desk


def bar(desk: Desk, ts: int, *path: int) -> list[m.StrategyOutcome]:
    desk.now = ts
    desk.price[TOKEN] = path[-1] / 100
    return desk.on_path(TOKEN, path) if TOKEN in desk.wake else []


def rows(desk: Desk, kind: str) -> list[dict]:
    return [o for o in desk.rec.orders if o["kind"] == kind]


def test_the_gtt_placed_on_day_1_stops_the_position_out_on_day_2_at_its_price():
    desk = carried_cnc()
    (gtt,) = rows(desk, "gtt")
    assert (gtt["order_type"], gtt["trigger_price"], gtt["price"], gtt["quantity"], gtt["status"],
            gtt["time"][:10]) == ("GTT", STOP, TARGET, 5, "ACTIVE", str(START))
    assert not rows(desk, "stop_loss") and not desk.resting  # no day SL order, placed or cancelled, on either day
    assert desk.strategy_qty[("s1", TOKEN)] == 5
    (fill,) = bar(desk, DAY2 + 60, 149500, 149600, 146500, 146800)  # day 2 falls through the stop
    assert (fill.kind, fill.order_kind, fill.price, fill.position) == ("protective_fill", "stop_loss", STOP - 5, 0)
    (fired,) = rows(desk, "stop_loss")  # the one order the GTT placed: a DAY LIMIT at the stop leg's price
    assert (fired["order_type"], fired["price"], fired["status"], fired["fill_price"], fired["time"][:10]) == (
        "LIMIT", STOP - 735, "COMPLETE", STOP - 5, str(START + timedelta(days=1)))
    assert rows(desk, "gtt")[0]["status"] == "TRIGGERED" and not desk.gtts.by_token and TOKEN not in desk.wake
    (trade,) = desk.rec.trades
    assert (trade["entry_price"], trade["exit_price"], trade["exit_kind"]) == (150005, STOP - 5, "stop_loss")


def test_the_target_leg_fires_a_limit_through_the_target():
    desk = carried_cnc()
    (fill,) = bar(desk, DAY2 + 60, 150000, 152500, 149900, 152300)
    # fired at ₹1,520: its LIMIT (₹1,512.40) sells across the spread at once, not at the target after trading through
    assert (fill.order_kind, fill.price, fill.position) == ("target", TARGET - 5, 0)
    assert rows(desk, "target")[0]["price"] == TARGET - 760


def test_a_gap_through_the_stop_legs_limit_is_chased_and_fills_at_the_open():
    desk = carried_cnc()
    (fill,) = bar(desk, DAY2 + 60, 145000, 145200, 144500, 144800)  # opened below the stop leg's LIMIT (₹1,462.65)
    # fired at the open; the market past its LIMIT, the live protector moves it 2 % through the last price at the
    # next tick (protection.chase_limit): it sells at the open across the spread, not after the close
    assert (fill.order_kind, fill.price, fill.position) == ("stop_loss", 145000 - 5, 0)
    (fired,) = rows(desk, "stop_loss")
    assert (fired["order_type"], fired["price"], fired["status"]) == ("LIMIT", 142100, "COMPLETE")
    assert rows(desk, "gtt")[0]["status"] == "TRIGGERED" and not desk.gtts.by_token


def test_an_exit_deletes_the_gtt():
    desk = carried_cnc()
    desk.now = DAY2 + 60
    sig = m.Signal(id="x1", user_id="DEMO01", strategy_id="s1", strategy="manual", exchange=m.Exchange.NSE,
                   tradingsymbol="INFY", instrument_token=TOKEN, transaction_type=m.TransactionType.SELL, quantity=5,
                   product=m.Product.CNC, order_type=m.OrderType.MARKET, intent="exit")
    out = desk.submit(sig)
    assert [o.kind for o in out] == ["accepted", "filled"] and out[-1].position == 0
    assert rows(desk, "gtt")[0]["status"] == "DELETED" and not desk.gtts.by_token and TOKEN not in desk.wake


def test_a_delivery_backtest_protects_every_position_by_gtt(tmp_path):
    """ema_crossover CNC (intraday off) over five days through the engine: GTTs, never a day SL; each fired order
    belongs to a GTT of its entry placed earlier, some on a later day (the position carried over a close)."""
    days = seed_store(tmp_path, days=6)
    spec = BacktestSpec(strategy="ema_crossover", symbols=["INFY", "TCS"], start=days[1], end=days[-1],
                        interval="minute", params={"fast": 5, "slow": 20, "intraday": False, "quantity": 10},
                        warmup_bars=0)
    out = execute(spec, tmp_path)
    orders = out["parts"]["orders"]
    assert not [o for o in orders if o["order_type"] == "SL" or o["kind"] == "MIS square-off"]
    gtts = {o["signal_id"]: o for o in orders if o["kind"] == "gtt"}
    fired = [o for o in orders if o["kind"] in ("stop_loss", "target")]
    assert fired and len(fired) == sum(g["status"] == "TRIGGERED" for g in gtts.values())
    for o in fired:
        g = gtts[o["signal_id"]]
        assert g["status"] == "TRIGGERED" and g["time"] <= o["time"] and o["order_type"] == "LIMIT"
        assert o["price"] < g["price" if o["kind"] == "target" else "trigger_price"]  # a sell, through its trigger
    assert any(o["time"][:10] > gtts[o["signal_id"]]["time"][:10] for o in fired)  # fired on a later day
    cash = sum((-1 if f["side"] == "BUY" else 1) * f["quantity"] * f["price"] for f in out["parts"]["fills"])
    assert sum(t["pnl"] for t in out["parts"]["trades"]) == cash + sum(  # what is still held, at its cost
        f["quantity"] * f["price"] for f in out["parts"]["fills"] if f["kind"] == "entry") - sum(
        t["quantity"] * t["entry_price"] for t in out["parts"]["trades"])


def test_the_gtt_of_an_expiring_contract_ends_with_it_and_none_is_placed_again():
    """An NRML call bought on day 1 and protected by a GTT that day, held into its expiry on day 2: the GTT stands
    through day 1's close (the contract lives on) and day 2's bars that reach neither leg; at day 2's close it is
    gone from the broker as Kite deletes an expired contract's GTTs (EXPIRED, not deleted by kta), and the position
    still held gets no new one (Kite refuses a GTT on an expired contract: the position settles as live, expiry.py).
    Before, it stood ACTIVE past the expiry, to be fired on a contract that no longer trades."""
    call = Instrument(instrument_token=9_001_234, exchange_token=35_161, tradingsymbol="NIFTY26303 26000CE", name="NIFTY",
                      last_price=0, expiry=START + timedelta(days=1), strike=26000.0, tick_size=0.05, lot_size=65,
                      instrument_type="CE", segment="NFO-OPT", exchange="NFO")
    token = call.instrument_token
    desk = Desk("DEMO01", {token: call}, Recorder(capital=10_000_000), {token: 150.0})
    desk.new_day(ist.day(DAY1))
    desk.now = DAY1
    sig = m.Signal(id="o1", user_id="DEMO01", strategy_id="s1", strategy="manual", exchange=m.Exchange.NFO,
                   tradingsymbol=call.tradingsymbol, instrument_token=token, transaction_type=m.TransactionType.BUY,
                   quantity=65, product=m.Product.NRML, order_type=m.OrderType.MARKET, stop_loss=12000, target=18000,
                   intent="entry")
    assert [o.kind for o in desk.submit(sig)] == ["accepted", "filled"]
    (gtt,) = rows(desk, "gtt")
    desk.now = DAY1 + 375 * 60 - 1
    assert desk.end_of_day() == [] and rows(desk, "gtt")[0]["status"] == "ACTIVE"  # expires tomorrow: it stands
    desk.new_day(ist.day(DAY2))
    desk.now, desk.price[token] = DAY2 + 60, 151.0
    assert desk.on_path(token, (15000, 15200, 14900, 15100)) == []  # between the legs
    desk.now = DAY2 + 375 * 60 - 1
    (settled,) = desk.end_of_day()
    assert [r["status"] for r in rows(desk, "gtt")] == ["EXPIRED"]  # gone with the contract, none placed again
    assert not desk.gtts.by_token and token not in desk.wake
    # what was held settles by the expiry (expiry.py; no underlying's price here: at the contract's own), not a GTT
    assert (settled.kind, settled.order_kind, settled.price, settled.position) == ("external", "expiry", 15100, 0)


def test_a_delivery_round_trip_of_one_day_is_charged_as_intraday_as_live_charges_it():
    """Zerodha charges CNC shares bought and sold on the same day as intraday (STT 0.025 % on the sell only,
    stamp 0.003 %, intraday brokerage): the backtest charged them at delivery rates, so a delivery strategy stopped
    out on its entry day paid about twice what live's P&L by strategy charges (shared.charges.same_day_intraday).
    A part carried to the next day and sold there is delivery."""
    from shared.charges import charges_paise

    desk = Desk("DEMO01", {TOKEN: INFY}, Recorder(capital=10_000_000), {TOKEN: 1500.0})
    desk.new_day(ist.day(DAY1))
    desk.now = DAY1

    def order(sid, side, qty, intent):
        sig = m.Signal(id=sid, user_id="DEMO01", strategy_id="s1", strategy="manual", exchange=m.Exchange.NSE,
                       tradingsymbol="INFY", instrument_token=TOKEN, transaction_type=m.TransactionType(side),
                       quantity=qty, product=m.Product.CNC, order_type=m.OrderType.MARKET, intent=intent)
        assert [o.kind for o in desk.submit(sig)][-1] == "filled"
        return desk.rec.fills[-1]["price"]

    def at(product, side, qty, price, on):
        return charges_paise("NSE", "EQ", product, side, qty, price, on=on)

    day1, day2 = ist.now(DAY1).date(), ist.now(DAY2).date()
    bought = order("b1", "BUY", 10, "entry")
    sold = order("s1", "SELL", 6, "exit")
    assert desk.rec.charges == (at("MIS", "BUY", 6, bought, day1) + at("CNC", "BUY", 4, bought, day1)
                                + at("MIS", "SELL", 6, sold, day1))
    assert desk.rec.charges < at("CNC", "BUY", 10, bought, day1) + at("CNC", "SELL", 6, sold, day1)
    before = desk.rec.charges
    desk.now = DAY1 + 375 * 60 - 1
    desk.end_of_day()
    desk.new_day(ist.day(DAY2))
    desk.now = DAY2 + 60
    later = order("s2", "SELL", 4, "exit")
    assert desk.rec.charges - before == at("CNC", "SELL", 4, later, day2)  # carried: delivery
