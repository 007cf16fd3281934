"""The pre-trade risk tests' kit: the limits they judge against (conftest's ``risk`` is a RiskManager with them on a
fresh journal at a settable ``clock``), and books — INFY holdings and an iron condor's legs."""


from shared.messages import OrderType, RiskLimits
from shared.trading.risk import RiskContext
from shared.trading.risk_context import Holding

from .kit import group, leg

LIMITS = RiskLimits(max_daily_loss=10_000_00, warn_daily_loss_pct=80.0, max_position_qty=100, max_position_lots=4,
                    max_exposure=1_000_000_00, max_orders_per_minute=5, max_open_orders=3,
                    max_exposure_per_symbol=300_000_00, max_exposure_per_strategy=500_000_00,
                    max_net_delta=500.0, max_net_vega=1_000.0)
LTP = 1500_00


def books(*holdings: Holding, **kw) -> RiskContext:
    return RiskContext(holdings={h.key: h for h in holdings}, **kw)


def infy(held=0, pending=0, account=None, account_pending=None, last=LTP, **kw) -> Holding:
    account = held if account is None else account  # the strategies' together, all on one side
    return Holding(key="NSE:INFY", held=held, pending=pending, account_long=max(account, 0),
                   account_short=max(-account, 0), account_pending=pending if account_pending is None else account_pending,
                   last_price=last, **kw)


def condor(qty=50, intent="entry", price=0):
    legs = [leg("NIFTY26N24000PE", "BUY", "PE", 24000_00, qty), leg("NIFTY26N24500PE", "SELL", "PE", 24500_00, qty),
            leg("NIFTY26N25500CE", "SELL", "CE", 25500_00, qty), leg("NIFTY26N26000CE", "BUY", "CE", 26000_00, qty)]
    if intent == "exit":
        legs = [leg(x.tradingsymbol, x.transaction_type.opposite, x.option_type, x.strike, qty) for x in legs]
    return group("iron_condor", [leg(x.tradingsymbol, x.transaction_type, x.option_type, x.strike, x.quantity,
                                     price=price, order_type=OrderType.LIMIT if price else OrderType.MARKET)
                                 for x in legs], intent=intent)


CONDOR = ("NIFTY26N24000PE", "NIFTY26N24500PE", "NIFTY26N25500CE", "NIFTY26N26000CE")


def condor_books(held: dict[str, int], last=100_00) -> RiskContext:
    held = {**dict.fromkeys(CONDOR, 0), **held}
    return books(*(Holding(key=f"NFO:{s}", held=q, account_long=max(q, 0), account_short=max(-q, 0), last_price=last,
                           lot_size=50) for s, q in held.items()))
