"""Margins and P&L of an account: SPAN-like margin for F&O, full value for CNC buys, a fifth of the
value for intraday equity; realised and unrealised P&L split so that realised + unrealised always equals
the cash flow of the fills plus the open quantity marked at the last price."""

from __future__ import annotations

from kite_sim.instruments import Instrument
from kite_sim.market import Market
from kite_sim.orders import Account, PositionBook, paise

LIVE = ("OPEN", "TRIGGER PENDING", "AMO REQ RECEIVED")


def margin_for(market: Market, inst: Instrument, product: str, qty: int, price: int, side: str) -> int:
    value = qty * price
    if inst.instrument_type in ("CE", "PE"):
        if side == "BUY":
            return value
        spot = paise(market.spot(inst.underlying))
        return int(qty * spot * 0.12) + value
    if inst.instrument_type == "FUT":
        return int(value * 0.12)
    return value if product == "CNC" and side == "BUY" else int(value * 0.2)


def utilised(market: Market, acc: Account) -> int:
    used = 0
    for (token, product), pb in acc.positions.items():
        qty = pb.quantity
        if qty and not covered_by_holdings(acc, token, product, "SELL" if qty < 0 else "BUY", -qty):
            inst = market.universe.by_token[token]
            used += margin_for(market, inst, product, abs(qty), paise(market.price(inst)), "BUY" if qty > 0 else "SELL")
    for o in acc.orders.values():
        if o.status in LIVE and not covered_by_holdings(acc, o.inst.instrument_token, o.product, o.transaction_type,
                                                        o.pending_quantity):
            px = o.price or o.trigger_price or paise(market.price(o.inst))
            used += margin_for(market, o.inst, o.product, o.pending_quantity, px, o.transaction_type)
    return used


def covered_by_holdings(acc: Account, token: int, product: str, side: str, qty: int) -> bool:
    """A CNC sell of shares already held delivers them: it needs no margin."""
    h = acc.holdings.get(token)
    return product == "CNC" and side == "SELL" and h is not None and qty <= h.total


def split_pnl(pb: PositionBook, ltp: int) -> tuple[int, int]:
    """(realised, unrealised) in paise: unrealised is the open quantity against its average cost."""
    qty = pb.quantity
    if qty > 0:
        unrealised = qty * ltp - (pb.buy_value * qty) // pb.buy_quantity
    elif qty < 0:
        unrealised = (pb.sell_value * -qty) // pb.sell_quantity + qty * ltp
    else:
        unrealised = 0
    pnl = pb.sell_value - pb.buy_value + qty * ltp
    return pnl - unrealised, unrealised


def ltp_paise(market: Market, token: int) -> int:
    return paise(market.price(market.universe.by_token[token]))


def pnl(market: Market, acc: Account) -> tuple[int, int]:
    """The account's (realised, unrealised) mark-to-market of the day: carried positions count from the
    previous close, because settlement booked everything before it to cash."""
    realised = unrealised = 0
    for (token, _), pb in acc.positions.items():
        r, u = split_pnl(pb.marked(), ltp_paise(market, token) if pb.quantity else 0)
        realised += r
        unrealised += u
    return realised, unrealised


def available(market: Market, acc: Account) -> int:
    realised, unrealised = pnl(market, acc)
    return acc.opening_balance + realised + min(0, unrealised) - utilised(market, acc)
