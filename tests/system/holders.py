"""Strategies that hold derivatives into their expiry (``test_expiry.py``). ``HoldFuture``: long the index's
nearest future (NRML, protected by its GTT) whenever flat — after its expiry has settled that is the next month's.
``HoldOptions``: once, a bought in-the-money call and a bought out-of-the-money put on the nearest expiry (one to
be exercised, one to expire worthless)."""

from __future__ import annotations

from datetime import datetime

from shared.ist import IST
from shared.messages import Bar, Exchange, Leg, OrderType, Product, TransactionType, to_paise
from strategy_worker.strategies.base import BaseStrategy
from strategy_worker.strategies.params import EquityParams


class HoldFuture(BaseStrategy):
    name = "test_hold_future"
    description = "test: holds the index's nearest future"
    interval = "minute"
    Params = EquityParams

    def on_bar(self, bar: Bar) -> list:
        sig = self.entry(TransactionType.BUY, 0.5, "hold: long the nearest future", 0.03, 0.03, price=bar.close)
        return [sig] if sig is not None else []


class HoldOptions(BaseStrategy):
    name = "test_hold_options"
    description = "test: holds an ITM call and an OTM put into expiry"
    kind = "options"
    interval = "minute"
    Params = EquityParams
    ITM, OTM = 200.0, 300.0  # points below the spot: the call's strike, the put's

    def on_bar(self, bar: Bar) -> list:
        if self.warming or self.state.get("entered") or self.book.position:
            return []
        today = datetime.fromtimestamp(self.ctx.clock(), IST).date()
        chain = [i for i in self.ctx.instruments if i.name == "NIFTY" and i.instrument_type in ("CE", "PE")
                 and i.expiry and i.expiry >= today]
        if not chain:
            return []
        nearest = min(i.expiry for i in chain)
        chain = [i for i in chain if i.expiry == nearest]

        def leg(kind: str, strike: float) -> Leg:
            inst = min((i for i in chain if i.instrument_type == kind), key=lambda i: abs(i.strike - strike))
            return Leg(exchange=Exchange(inst.exchange), tradingsymbol=inst.tradingsymbol,
                       instrument_token=inst.instrument_token, transaction_type=TransactionType.BUY,
                       quantity=inst.lot_size * self.params.lots, product=Product.NRML, order_type=OrderType.MARKET,
                       lot_size=inst.lot_size, option_type=kind, strike=to_paise(inst.strike),
                       expiry=inst.expiry.isoformat())

        group = self.group("test_long_pair", "NIFTY", [leg("CE", bar.close - self.ITM), leg("PE", bar.close - self.OTM)],
                           "entry", 0.5, "hold: an ITM call and an OTM put into expiry")
        if group is not None:
            self.state["entered"] = True
        return [group] if group is not None else []
