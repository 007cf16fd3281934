"""The pre-trade margin check against kite_sim: an entry and a spread the account cannot carry are
refused with the required and available margin in rupees before any order leaves (no hedge filled
alone), and what the account can carry goes through."""

import time

from shared import messages as m
from shared import subjects
from shared.trading.margin import CODE
from tests.execution_worker.conftest import make_stack
from tests.execution_worker.kit import USER, broker, group_tag_digest, nifty_chain, option_leg
from tests.helpers import eventually

WIDE = m.RiskLimits(max_position_qty=1_000_000, max_position_lots=100_000, max_exposure=10**15,
                    max_exposure_per_symbol=10**15, max_exposure_per_strategy=10**15, max_net_delta=10**9,
                    max_net_vega=10**12, max_open_orders=1000, max_orders_per_minute=1000)


def nifty_future_short(sid: str, fut, lots: int) -> m.Signal:
    return m.Signal(id=sid, user_id=USER, strategy_id="margin-1", strategy="manual", exchange=m.Exchange.NFO,
                    tradingsymbol=fut.tradingsymbol, instrument_token=fut.instrument_token,
                    transaction_type=m.TransactionType.SELL, quantity=fut.lot_size * lots, product=m.Product.NRML,
                    order_type=m.OrderType.MARKET, intent="entry", created_at=time.time_ns())


async def per_lot(kite, body: list[dict]) -> float:
    return (await broker(kite.basket_order_margins, body)).final.total


async def test_what_the_account_cannot_carry_is_refused_in_rupees_before_any_order(bus, sim, data_dir):
    async with make_stack(bus, sim, data_dir, margin_check_above=0.0) as (settings, journal, kite):
        assert isinstance(await bus.request(subjects.cmd(USER, "risk", "limits"), m.SetRiskLimits(limits=WIDE)), m.Ok)
        available = (await broker(kite.margins, "equity")).net
        futures = sorted((i for i in await broker(kite.instruments, "NFO") if i.name == "NIFTY"
                          and i.instrument_type == "FUT"), key=lambda i: i.expiry)
        fut = futures[-1]
        one_lot = await per_lot(kite, [{"exchange": "NFO", "tradingsymbol": fut.tradingsymbol, "variety": "regular",
                                       "transaction_type": "SELL", "product": "NRML", "order_type": "MARKET",
                                       "quantity": fut.lot_size}])
        too_many = int(available // one_lot) + 3

        big = nifty_future_short("margin-big-1", fut, too_many)
        await bus.js_publish(subjects.signals(USER), big, msg_id=big.id)
        await eventually(lambda: journal.signal_decision(big.id) == "refused", what="the refusal")
        row = journal.signal(big.id)
        assert row["code"] == CODE and "of margin" in row["reason"] and "available" in row["reason"], row
        assert row["reason"].startswith("needs ₹") and "nothing was placed" in row["reason"]
        assert not journal.orders_of_signal(big.id)

        small = nifty_future_short("margin-small-1", fut, 1)
        await bus.js_publish(subjects.signals(USER), small, msg_id=small.id)
        await eventually(lambda: journal.orders_of_signal(small.id), what="the entry it can carry placed")
        assert journal.signal_decision(small.id) == "accepted"

        calls = await nifty_chain(kite, "CE")
        strikes = sorted(calls)
        atm = calls[min(strikes, key=lambda k: abs(k - 26000.0))]
        wing = calls[strikes[strikes.index(atm.strike) + 2]]
        spread_lot = await per_lot(kite, [
            {"exchange": "NFO", "tradingsymbol": i.tradingsymbol, "variety": "regular", "transaction_type": side,
             "product": "NRML", "order_type": "MARKET", "quantity": i.lot_size} for i, side in ((wing, "BUY"),
                                                                                                (atm, "SELL"))])
        lots = int(available // spread_lot) + 3
        group = m.SignalGroup(id="margin-spread-1", user_id=USER, strategy_id="margin-2", strategy="bear_call_spread",
                              structure="bear_call_spread", underlying="NIFTY",
                              legs=[option_leg(wing, "BUY", True, lots=lots), option_leg(atm, "SELL", False, lots=lots)])
        await bus.js_publish(subjects.signals(USER), group, msg_id=group.id)
        await eventually(lambda: journal.signal_decision(group.id) == "refused", what="the spread refused")
        assert journal.signal(group.id)["code"] == CODE
        assert not journal.orders_of_group(group.id)  # not even the hedge
        digest = group_tag_digest(group.id)
        assert not [o for o in await broker(kite.orders) if o.tag and digest in o.tag]
