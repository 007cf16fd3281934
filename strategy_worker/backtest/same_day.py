"""Delivery shares bought and sold on the same day are charged as intraday, as live charges them
(``shared.charges.same_day_intraday``; Zerodha's rule). A backtest charges each fill as it happens, so a CNC
fill that squares off the day's earlier CNC fills of the other side (first in, first out) is charged as
intraday for that part, and gives back what those earlier fills paid at delivery rates beyond the intraday
rates for it: a round trip of the day costs what live's P&L by strategy charges it."""

from __future__ import annotations

from collections import deque
from datetime import date

from shared.charges import charges_paise
from shared.kite.models import Instrument

DELIVERY, INTRADAY = "CNC", "MIS"  # the product that prices an equity order at each rate


class SameDay:
    def __init__(self) -> None:
        self.day: date | None = None
        self.unmatched: dict[tuple[int, str], deque[list[int]]] = {}  # (token, side) -> [[qty, price], ...] today

    def cost(self, inst: Instrument, product: str, side: str, quantity: int, price: int, on: date) -> int:
        """The charges (paise) of one fill."""
        if product != DELIVERY or inst.instrument_type != "EQ" or inst.exchange not in ("NSE", "BSE"):
            return charges_paise(inst.exchange, inst.instrument_type, product, side, quantity, price, on=on)
        if on != self.day:
            self.day, self.unmatched = on, {}
        other_side = "SELL" if side == "BUY" else "BUY"
        other = self.unmatched.setdefault((inst.instrument_token, other_side), deque())
        matched = given_back = 0
        while other and matched < quantity:
            lot = other[0]
            take = min(lot[0], quantity - matched)
            given_back += (self._at(inst, DELIVERY, other_side, take, lot[1], on)
                           - self._at(inst, INTRADAY, other_side, take, lot[1], on))
            matched += take
            lot[0] -= take
            if not lot[0]:
                other.popleft()
        if quantity > matched:
            self.unmatched.setdefault((inst.instrument_token, side), deque()).append([quantity - matched, price])
        return (self._at(inst, INTRADAY, side, matched, price, on) + self._at(inst, DELIVERY, side, quantity - matched,
                                                                              price, on) - given_back)

    @staticmethod
    def _at(inst: Instrument, product: str, side: str, quantity: int, price: int, on: date) -> int:
        return charges_paise(inst.exchange, inst.instrument_type, product, side, quantity, price, on=on) if quantity else 0
