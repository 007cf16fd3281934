"""End-of-day settlement (``--settle``), run when the market clock moves to the next trading day.

- Unfilled DAY orders are cancelled by the exchange; the order book and trade book start empty
  (queued AMOs stay); GTTs no longer active leave the GTT book.
- CNC buys become holdings as ``t1_quantity`` and settle into ``quantity`` a trading day later (T+1);
  CNC sells deliver held shares.
- MIS positions still open are squared off at the close; NRML positions carry over (``overnight_quantity``)
  at their average cost, remembering the close; the day's mark-to-market (since the previous close) is
  booked to cash, so a carried position's ``pnl`` runs since cost and its ``m2m`` since the close.
- Derivatives that expired on the closing day settle: futures at the underlying's close, options
  in the money exercised at their intrinsic value on the underlying's close, out of the money worthless.
"""

from __future__ import annotations

import logging
from datetime import date

from kite_sim.clock import SESSION_SECONDS
from kite_sim.orders import TERMINAL, Account, Holding, PositionBook, paise

log = logging.getLogger("kite_sim.settlement")


def settle_day(broker, old_day: date, new_day: date) -> None:
    for acc in broker.accounts.values():
        _expire_orders(broker, acc)
        _settle_t1(acc)
        _settle_positions(broker, acc, old_day)
        acc.orders = {k: o for k, o in acc.orders.items() if o.status not in TERMINAL}
        acc.trades = []
        broker.gtt.purge(acc)
    log.info("settled %s for %d accounts; trading day %s", old_day, len(broker.accounts), new_day)


def _expire_orders(broker, acc: Account) -> None:
    for o in acc.orders.values():
        if o.status in ("OPEN", "TRIGGER PENDING"):
            o.cancelled_quantity = o.quantity - o.filled_quantity
            broker._set(o, "CANCELLED", "Order expired at the end of the day")


def _settle_t1(acc: Account) -> None:
    for token, h in acc.holdings.items():
        if h.t1_quantity:
            log.info("T+1: %d of token %d settled into holdings", h.t1_quantity, token, extra={"user_id": acc.user_id})
            h.quantity += h.t1_quantity
            h.t1_quantity = 0


def settlement_price(market, inst, day: date) -> int:
    """Closing price of ``inst`` on ``day``; on its expiry day, the exchange's final settlement price."""
    if inst.expiry is None or inst.expiry > day:
        return paise(market.price(inst, day, SESSION_SECONDS))
    spot = market.spot(inst.underlying, day, SESSION_SECONDS)
    if inst.instrument_type == "FUT":
        return paise(spot)
    intrinsic = spot - inst.strike if inst.instrument_type == "CE" else inst.strike - spot
    return max(0, paise(intrinsic))


def _settle_positions(broker, acc: Account, day: date) -> None:
    carried: dict[tuple[int, str], PositionBook] = {}
    for (token, product), pb in acc.positions.items():
        inst = broker.market.universe.by_token[token]
        qty = pb.quantity
        marked = pb.marked()
        flow = marked.sell_value - marked.buy_value  # the day's cash flow, carried quantity from the last close
        if not qty:
            acc.opening_balance += flow
        elif inst.expiry is not None and inst.expiry <= day:
            px = settlement_price(broker.market, inst, day)
            acc.opening_balance += flow + qty * px
            outcome = "exercised" if px else "expired worthless"
            log.info("expiry: %s %d %s at %.2f", inst.tradingsymbol, qty, outcome, px / 100,
                     extra={"user_id": acc.user_id})
        elif product == "CNC":
            acc.opening_balance += flow
            _deliver(acc, token, qty, pb)
        elif product == "MIS":
            px = settlement_price(broker.market, inst, day)
            acc.opening_balance += flow + qty * px
            log.info("square-off: %s MIS %d at %.2f", inst.tradingsymbol, qty, px / 100, extra={"user_id": acc.user_id})
        else:
            px = settlement_price(broker.market, inst, day)
            acc.opening_balance += flow + qty * px
            cost = pb.buy_value // pb.buy_quantity if qty > 0 else pb.sell_value // pb.sell_quantity
            carried[(token, product)] = (PositionBook(qty, qty * cost, 0, 0, qty, px, cost) if qty > 0
                                         else PositionBook(0, 0, -qty, -qty * cost, qty, px, cost))
    acc.positions = carried


def _deliver(acc: Account, token: int, qty: int, pb: PositionBook) -> None:
    h = acc.holdings.get(token)
    if qty > 0:
        cost = pb.buy_value * qty // pb.buy_quantity
        if h is None:
            acc.holdings[token] = Holding(0, cost // qty, qty)
        else:
            h.average = (h.average * h.total + cost) // (h.total + qty)
            h.t1_quantity += qty
        log.info("delivery: %d of token %d bought, T+1 pending", qty, token, extra={"user_id": acc.user_id})
    elif h is not None:
        sold = -qty
        from_settled = min(sold, h.quantity)
        h.quantity -= from_settled
        h.t1_quantity -= sold - from_settled
        if h.total <= 0:
            del acc.holdings[token]
