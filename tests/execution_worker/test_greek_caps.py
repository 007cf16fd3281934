"""The caps on net option greeks per underlying, live: the worker prices what a signal adds from
the sim's quotes and refuses what would take the underlying's net delta past the cap, with the reason."""

import time

from shared import messages as m
from shared import subjects
from tests.execution_worker.kit import USER, nifty_chain, option_leg
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
