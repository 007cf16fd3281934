"""Option orders live against kite_sim: the caps on net greeks per underlying (the worker prices what
a signal adds from the sim's quotes and refuses what would take the net delta past the cap, with
the reason), a quantity above the exchange's freeze limit placed as lot-sized slices, and the
expiry review of the positions pass (stock options warned about, index options left alone)."""

import time
from datetime import datetime, timedelta

from execution_worker.engine import Desk
from shared.ist import IST
from execution_worker.live import Desks
from shared.trading.risk import RiskManager
from shared import messages as m
from shared import subjects
from shared.kite.models import Instrument
from tests.execution_worker.kit import USER, broker, nifty_chain, option_leg
from tests.helpers import eventually


async def test_net_delta_cap_refuses_an_option_signal_and_a_group_with_the_reason(bus, stack):
    _, journal, kite = stack
    calls = await nifty_chain(kite, "CE")
    atm, wing = calls[26000.0], calls[26200.0]
    limits = m.RiskLimits(max_net_delta=5.0)  # units of NIFTY: one lot of an ATM call is ~30
    assert isinstance(await bus.request(subjects.cmd(USER, "risk", "limits"), m.SetRiskLimits(limits=limits)), m.Ok)
    try:
        sig = m.Signal(id="greeks-call-1", user_id=USER, strategy_id="opt-1", strategy="manual", exchange=m.Exchange.NFO,
                       tradingsymbol=atm.tradingsymbol, instrument_token=atm.instrument_token,
                       transaction_type=m.TransactionType.BUY, quantity=atm.lot_size, product=m.Product.NRML,
                       order_type=m.OrderType.MARKET, created_at=time.time_ns())
        group = m.SignalGroup(id="greeks-spread-1", user_id=USER, strategy_id="spread-2", strategy="bear_call_spread",
                              structure="bear_call_spread", underlying="NIFTY",
                              legs=[option_leg(wing, "BUY", True), option_leg(atm, "SELL", False)])
        for s in (sig, group):
            await bus.js_publish(subjects.signals(USER), s, msg_id=s.id)
        for s in (sig, group):
            await eventually(lambda: journal.signal_decision(s.id) == "refused", what=f"{s.id} refused")
            row = journal.signal(s.id)
            assert row["code"] == "NET_DELTA_LIMIT" and "NIFTY net delta" in row["reason"], row
            assert not journal.orders_of_signal(s.id) and not journal.orders_of_group(s.id)
    finally:
        await bus.request(subjects.cmd(USER, "risk", "limits"), m.SetRiskLimits(limits=m.RiskLimits()))


async def test_a_nifty_option_order_above_the_freeze_quantity_goes_out_in_slices(bus, stack):
    _, journal, kite = stack
    calls = await nifty_chain(kite, "CE")
    far = calls[max(calls)]  # the farthest out of the money: cheap, little delta
    qty = far.lot_size * 40  # 2,600 units: NIFTY's freeze quantity is 1,800
    limits = m.RiskLimits(max_position_lots=50)
    assert isinstance(await bus.request(subjects.cmd(USER, "risk", "limits"), m.SetRiskLimits(limits=limits)), m.Ok)
    try:
        for sid, side, intent in (("freeze-buy-1", "BUY", "entry"), ("freeze-sell-1", "SELL", "exit")):
            sig = m.Signal(id=sid, user_id=USER, strategy_id="opt-2", strategy="manual", exchange=m.Exchange.NFO,
                           tradingsymbol=far.tradingsymbol, instrument_token=far.instrument_token,
                           transaction_type=m.TransactionType(side), quantity=qty, product=m.Product.NRML,
                           order_type=m.OrderType.MARKET, intent=intent, created_at=time.time_ns())
            await bus.js_publish(subjects.signals(USER), sig, msg_id=sig.id)
            rows = await eventually(lambda: (rows := journal.orders_of_signal(sid)) and len(rows) == 2 and all(
                r["status"] == "COMPLETE" for r in rows) and rows, timeout=30, what=f"{sid}: both slices filled")
            assert sorted(r["quantity"] for r in rows) == [845, 1755]
            held = qty if side == "BUY" else 0  # the exit closes what the fills journaled: wait for them
            await eventually(lambda: sum(t["quantity"] * (1 if t["transaction_type"] == "BUY" else -1)
                                         for t in journal.trades(USER) if t["strategy_id"] == "opt-2") == held,
                             what=f"{sid}: its fills journaled")
            assert all(r["market_protection"] == -1 and r["order_type"] == "MARKET" for r in rows)
            assert len({r["tag"] for r in rows}) == 2
    finally:
        await bus.request(subjects.cmd(USER, "risk", "limits"), m.SetRiskLimits(limits=m.RiskLimits()))


async def test_an_itm_stock_option_near_expiry_is_warned_about_and_index_options_are_not(bus, sim, stack):
    settings, journal, kite = stack
    spot = (await broker(kite.ltp, "NSE:INFY"))["NSE:INFY"].last_price
    tomorrow = datetime.now(IST).date() + timedelta(days=1)

    def option(name, symbol, strike):  # the sim lists no stock options: this one is the position's contract
        return Instrument(instrument_token=9_000_001, exchange_token=1, tradingsymbol=symbol, name=name, last_price=0.0,
                          expiry=tomorrow, strike=strike, tick_size=0.05, lot_size=400, instrument_type="CE",
                          segment="NFO-OPT", exchange="NFO")

    stock, index = option("INFY", "INFY26TESTCE", spot - 100), option("NIFTY", "NIFTY26TESTCE", 20000.0)
    desk = Desk(USER, bus, journal, kite, RiskManager(USER, None, journal),
                {"NFO:INFY26TESTCE": stock, "NFO:NIFTY26TESTCE": index}, -1, 0.5)
    for i in (stock, index):  # a strategy holds both
        desk.tracker.on_fill(strategy_id="opt-3", exchange="NFO", tradingsymbol=i.tradingsymbol, transaction_type="BUY",
                             quantity=400, price=100_00, instrument_token=i.instrument_token, product="NRML")
    await Desks(bus, settings, journal).exercise(desk)
    warnings = [e for e in journal.risk_events(USER) if e["code"] == "EXERCISE_WARNING"]
    assert len(warnings) == 1 and "INFY26TESTCE" in warnings[0]["message"] and "delivery" in warnings[0]["message"]
