"""The rules every signal passes before it leaves the strategy worker (the execution worker checks
again at risk). A failed rule is a :class:`Refusal` with a code and a sentence a trader can read.

* An entry's stop-loss and target are > 0, on the right side of the reference price (below it for a
  buy's stop, above for its target; mirrored for a sell) and inside the instrument's circuit band
  for the day when it is known — a stop the exchange would reject is no stop at all.
* Nothing is sent on an instrument while an earlier signal on it is in flight.
* An exit only reduces: the opposite side of the held position, at most its size; none on a flat book.
"""

from __future__ import annotations

from typing import NamedTuple

from shared.messages import Signal, SignalGroup
from strategy_worker.strategies.book import Book, signed


class Refusal(NamedTuple):
    code: str
    reason: str


def price_refusal(sig: Signal, ref: float | None, band: tuple[float, float] | None) -> Refusal | None:
    """Stop and target of an entry against the reference price (rupees) and the circuit band."""
    if sig.intent != "entry" or (sig.stop_loss is None and sig.target is None):
        return None
    buy = sig.transaction_type.value == "BUY"
    for what, level in (("stop_loss", sig.stop_loss), ("target", sig.target)):
        if level is None:
            continue
        rupees = level / 100
        if level <= 0:
            return Refusal("BAD_" + what.upper(), f"{what} ₹{rupees:.2f} is not a price")
        if ref:
            below = what == "stop_loss" if buy else what == "target"
            if below and not rupees < ref:
                return Refusal("BAD_" + what.upper(),
                               f"{what} ₹{rupees:.2f} is not below the price ₹{ref:.2f} of a "
                               f"{'buy' if buy else 'sell'} {sig.tradingsymbol}")
            if not below and not rupees > ref:
                return Refusal("BAD_" + what.upper(),
                               f"{what} ₹{rupees:.2f} is not above the price ₹{ref:.2f} of a "
                               f"{'buy' if buy else 'sell'} {sig.tradingsymbol}")
        if band and band[1] > 0 and not band[0] <= rupees <= band[1]:
            return Refusal("OUTSIDE_CIRCUIT", f"{what} ₹{rupees:.2f} is outside {sig.tradingsymbol}'s circuit "
                                              f"band ₹{band[0]:.2f}–₹{band[1]:.2f}")
    return None


def book_refusal(sig: Signal | SignalGroup, book: Book) -> Refusal | None:
    """In-flight and exit-size rules against what the instance holds."""
    legs = sig.legs if isinstance(sig, SignalGroup) else [sig]
    for leg in legs:
        token = leg.instrument_token
        if book.busy(token):
            return Refusal("IN_FLIGHT", f"a signal on {leg.tradingsymbol} is still in flight")
        if sig.intent != "exit":
            continue
        held, delta = book.held(token), signed(leg.transaction_type, leg.quantity)
        if not held:
            return Refusal("NO_POSITION", f"exit on {leg.tradingsymbol} while flat")
        if (held > 0) == (delta > 0) or abs(delta) > abs(held):
            return Refusal("EXIT_GROWS", f"exit {leg.transaction_type.value} {leg.quantity} {leg.tradingsymbol} "
                                         f"would not reduce the position {held}")
    return None
