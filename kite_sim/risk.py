"""Margins and P&L of an account: full value for CNC buys, a fifth of the value for intraday equity, and for
F&O a SPAN-like portfolio margin (``derivatives_margin``): the legs on one underlying are margined together by
their worst loss over the underlying's moves, so a hedged structure (a spread, an iron condor, a straddle with
wings) needs what it can lose, not each short leg's margin; realised and unrealised P&L split so that realised +
unrealised always equals the cash flow of the fills plus the open quantity marked at the last price."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, timedelta

from kite_sim.clock import session_open
from kite_sim.instruments import Instrument
from kite_sim.market import RATE, Market, black_scholes
from kite_sim.orders import Account, PositionBook, paise

LIVE = ("OPEN", "TRIGGER PENDING", "AMO REQ RECEIVED")
SCAN = 0.06  # the underlying's move SPAN scans for index derivatives (about NSE's price scan range for NIFTY)
EXPOSURE = 0.02  # NSE's exposure margin on index futures and short index options: 2 % of the notional
DERIVATIVES = ("CE", "PE", "FUT")

Legs = Iterable[tuple[Instrument, int]]  # (instrument, signed quantity)


def _value_at(market: Market, inst: Instrument, spot: float, at: datetime) -> float:
    t = market.years_to_expiry(inst, at)
    if inst.instrument_type == "FUT":
        return spot * math.exp(RATE * t)
    return black_scholes(spot, inst.strike, t, market.iv(inst, spot, t), inst.instrument_type)


def derivatives_margin(market: Market, legs: Legs) -> int:
    """What F&O legs held together need, in paise, per underlying: the premium of the long options (paid in
    full), the worst loss of all the legs over moves of the underlying up to ±SCAN (options repriced by the
    market's own model) beyond what the long options are worth, and EXPOSURE of the notional of the short
    options and the futures."""
    by_underlying: dict[str, dict[int, list]] = {}  # underlying -> token -> [instrument, signed quantity]
    for inst, qty in legs:
        held = by_underlying.setdefault(inst.underlying, {}).setdefault(inst.instrument_token, [inst, 0])
        held[1] += qty
    day, sec = market.clock.now()
    at = session_open(day) + timedelta(seconds=sec)
    total = 0.0
    for underlying, by_token in by_underlying.items():
        held = [(i, q) for i, q in by_token.values() if q]
        if not held:
            continue
        spot = market.spot(underlying)
        premium = sum(q * market.price(i) for i, q in held if q > 0 and i.instrument_type != "FUT")
        worst = min(sum(q * (_value_at(market, i, spot * (1 + SCAN * k / 3), at) - _value_at(market, i, spot, at))
                        for i, q in held) for k in range(-3, 4))
        exposure = EXPOSURE * spot * sum(abs(q) for i, q in held if q < 0 or i.instrument_type == "FUT")
        total += premium + max(0.0, -worst - premium) + exposure
    return round(total * 100)


def margin_for(market: Market, inst: Instrument, product: str, qty: int, price: int, side: str) -> int:
    """One order alone (``POST /margins/orders``)."""
    value = qty * price
    if inst.instrument_type in ("CE", "PE") and side == "BUY":
        return value
    if inst.instrument_type in DERIVATIVES:
        return derivatives_margin(market, [(inst, qty if side == "BUY" else -qty)])
    return value if product == "CNC" and side == "BUY" else int(value * 0.2)


def _signed(side: str, qty: int) -> int:
    return qty if side == "BUY" else -qty


def derivative_legs(market: Market, acc: Account) -> tuple[list[tuple[Instrument, int]], list[tuple[Instrument, int]]]:
    """The account's F&O positions and the pending quantity of its live F&O orders, as legs."""
    positions = [(market.universe.by_token[token], pb.quantity) for (token, _), pb in acc.positions.items()
                 if pb.quantity and market.universe.by_token[token].instrument_type in DERIVATIVES]
    orders = [(o.inst, _signed(o.transaction_type, o.pending_quantity)) for o in acc.orders.values()
              if o.status in LIVE and o.inst.instrument_type in DERIVATIVES]
    return positions, orders


def _fo_utilised(market: Market, positions: list, orders: list) -> int:
    # a live order that would reduce the margin (a stop of a short) frees nothing until it fills
    held = derivatives_margin(market, positions)
    return max(held, derivatives_margin(market, positions + orders)) if orders else held


def utilised(market: Market, acc: Account) -> int:
    used = _fo_utilised(market, *derivative_legs(market, acc))
    for (token, product), pb in acc.positions.items():
        qty = pb.quantity
        inst = market.universe.by_token[token]
        if qty and inst.instrument_type not in DERIVATIVES and \
                not covered_by_holdings(acc, token, product, "SELL" if qty < 0 else "BUY", -qty):
            used += margin_for(market, inst, product, abs(qty), paise(market.price(inst)), "BUY" if qty > 0 else "SELL")
    for o in acc.orders.values():
        if o.status in LIVE and o.inst.instrument_type not in DERIVATIVES and \
                not covered_by_holdings(acc, o.inst.instrument_token, o.product, o.transaction_type, o.pending_quantity):
            px = o.price or o.trigger_price or paise(market.price(o.inst))
            used += margin_for(market, o.inst, o.product, o.pending_quantity, px, o.transaction_type)
    return used


def order_need(market: Market, acc: Account, inst: Instrument, product: str, qty: int, price: int, side: str) -> int:
    """What placing an order adds to the account's margin: for F&O, margined with what the account holds and
    has working (a short leg whose wing is held needs the structure's worst loss, not a naked short's margin)."""
    if inst.instrument_type not in DERIVATIVES:
        return margin_for(market, inst, product, qty, price, side)
    positions, orders = derivative_legs(market, acc)
    before = _fo_utilised(market, positions, orders)
    return max(0, _fo_utilised(market, positions, [*orders, (inst, _signed(side, qty))]) - before)


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
