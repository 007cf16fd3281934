"""The simulated depth of an instrument's book at one second: five levels a side of (price, quantity,
orders), drawn from a generator seeded by (seed, token, second), so the same second always shows the same
book and the matching is deterministic.

- Equities, futures: the bid a tick below the last price, the offer a tick above; 1-39 lots a level
  (25 shares a lot for equities).
- Options, priced by how far they are from the money: the last trade printed on one side of the book (the
  bid or the offer is the last price, seeded), the spread one tick for most contracts and wider for
  expensive in-the-money ones (about 0.04 % of the premium); 20-400 lots a level at the money, thinning
  with the distance in strikes (fifteen strikes out, to about a third). The legs of a spread or a condor
  fill at once, as on the exchange.
- No level is ever priced below one tick: a ₹0.05 option has a single bid level.
"""

from __future__ import annotations

import math

import numpy as np

from kite_sim.instruments import Instrument

Level = tuple[float, int, int]  # price (rupees), quantity, orders
OPTION_SPREAD = 0.0004  # of the premium, in ticks at least one
WIDTH = 15.0  # strikes from the money at which an option's book is e^-1 of its depth at the money


def _price(x: float, tick: float) -> float:
    return round(round(x / tick) * tick, 2)


def depth(inst: Instrument, ltp: float, tick: float, rng: np.random.Generator,
          strikes_from_money: float = 0.0) -> tuple[list[Level], list[Level]]:
    """(bids, offers), best first."""
    if not inst.tradable:
        return [], []
    lots = max(1, inst.lot_size)
    if inst.instrument_type in ("CE", "PE"):
        scale = max(0.1, math.exp(-((strikes_from_money / WIDTH) ** 2)))
        sizes = np.maximum(1, (rng.integers(20, 400, 10) * scale).astype(int)) * lots
        orders = rng.integers(1, 60, 10)
        spread = max(1, round(ltp * OPTION_SPREAD / tick))
        at_bid = rng.random() < 0.5 or ltp - spread * tick < tick
        bid0 = ltp if at_bid else ltp - spread * tick
        ask0 = bid0 + spread * tick
    else:
        sizes = rng.integers(1, 40, 10) * lots * (1 if inst.instrument_type == "FUT" else 25)
        orders = rng.integers(1, 25, 10)
        bid0 = ltp - tick if ltp > tick else ltp
        ask0 = ltp + tick
    buy = [(p, int(sizes[k]), int(orders[k])) for k in range(5) if (p := _price(bid0 - k * tick, tick)) >= tick]
    sell = [(_price(ask0 + k * tick, tick), int(sizes[5 + k]), int(orders[5 + k])) for k in range(5)]
    return buy, sell
