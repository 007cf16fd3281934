"""Realistic Kite feed content for the benches: per instrument a seeded random walk of the order book.

Most ticks are book changes (a depth level's quantity or order count, the total buy/sell quantity move;
price and volume stay), the rest trades (last price moves a tick or two, volume, last quantity, average
price, last trade time and the book follow). So, as on a real feed, many consecutive ticks share their
last price and volume and differ only in depth or buy/sell quantities — what an inexact de-duplication
loses. (Two ticks of an instrument can still be identical field for field, rarely, as on a real feed.)

``MIX`` is the mixed frame the decode bench reports against (kta's live feed: strategies and the
execution worker subscribe full mode, the dashboard quote, an API client ltp; index underlyings beside
tradables); every packet kind is also measured on its own.
"""

from __future__ import annotations

import random

from shared.kite import codec
from shared.messages import OHLC, Depth, Tick

INDEX_SEGMENT, NSE_SEGMENT = 9, 1
# (mode, index) -> packets of that kind in 20: mostly full tradables, every kind present
MIX = {("full", False): 12, ("quote", False): 3, ("ltp", False): 2, ("full", True): 1, ("quote", True): 1,
       ("ltp", True): 1}
BOOK_CHANGE = 0.7  # share of ticks that are book changes only (price and volume unchanged)


class Instrument:
    """One instrument's state on the simulated exchange, advanced one tick at a time."""

    def __init__(self, token: int, rng: random.Random, price: float | None = None) -> None:
        self.token, self.rng = token, rng
        self.index = token & 0xFF == INDEX_SEGMENT
        self.price = round(price or rng.uniform(50, 5000), 1)
        self.close = self.price
        self.open = self.high = self.low = self.price
        self.volume = rng.randrange(10_000, 1_000_000)
        self.value = self.volume * self.price
        self.ltq = 1
        self.ltt = self.ets = 1_767_000_000 + rng.randrange(3600)
        self.oi = rng.randrange(0, 100_000)
        self.bids = [[rng.randrange(1, 5000), rng.randrange(1, 40)] for _ in range(5)]  # [qty, orders]
        self.asks = [[rng.randrange(1, 5000), rng.randrange(1, 40)] for _ in range(5)]

    def step(self) -> None:
        rng = self.rng
        self.ets += rng.random() < 0.05  # the exchange's clock is in seconds: most ticks share it
        side = self.bids if rng.random() < 0.5 else self.asks
        level = side[rng.randrange(5)]
        if rng.random() < BOOK_CHANGE:  # an order joins or leaves a level
            level[0] = max(1, level[0] + rng.choice((-1, 1)) * rng.randrange(1, 200))
            level[1] = max(1, level[1] + rng.choice((-1, 0, 1)))
            return
        self.ltq = rng.randrange(1, 300)  # a trade, maybe moving the price
        self.price = round(max(0.1, self.price + rng.choice((-0.1, -0.05, 0, 0, 0.05, 0.1))), 2)
        self.high, self.low = max(self.high, self.price), min(self.low, self.price)
        self.volume += self.ltq
        self.value += self.ltq * self.price
        self.ltt = self.ets
        level[0] = max(1, level[0] - self.ltq // 2)

    def tick(self, mode: str) -> Tick:
        ohlc = OHLC(self.open, self.high, self.low, self.close)
        if mode == "ltp":
            return Tick(self.token, mode, not self.index, self.price)
        if self.index:
            return Tick(self.token, mode, False, self.price, ohlc=ohlc,
                        exchange_timestamp=self.ets if mode == "full" else None)
        t = Tick(self.token, mode, True, self.price, self.ltq, round(self.value / self.volume, 2), self.volume,
                 sum(q for q, _ in self.bids) * 3, sum(q for q, _ in self.asks) * 3, ohlc)
        if mode == "full":
            t.last_trade_time, t.oi, t.oi_day_high, t.oi_day_low, t.exchange_timestamp = (
                self.ltt, self.oi, self.oi + 500, max(0, self.oi - 500), self.ets)
            t.depth = Depth([(q, round(self.price - 0.05 * (i + 1), 2), o) for i, (q, o) in enumerate(self.bids)],
                            [(q, round(self.price + 0.05 * (i + 1), 2), o) for i, (q, o) in enumerate(self.asks)])
        return t

    def packet(self, mode: str) -> bytes:
        self.step()
        return codec.encode_packet(self.tick(mode))


def token(i: int, index: bool = False) -> int:
    return (1000 + i) * 256 + (INDEX_SEGMENT if index else NSE_SEGMENT)


def instruments(n: int, seed: int = 1, index_every: int = 0) -> list[Instrument]:
    """``n`` instruments; every ``index_every``-th one an index (0: none)."""
    rng = random.Random(seed)
    return [Instrument(token(i, bool(index_every) and i % index_every == 0), rng) for i in range(n)]


def frames(kinds: dict[tuple[str, bool], int], n_packets: int, per_frame: int = 100, seed: int = 1) -> list[bytes]:
    """Frames of ``per_frame`` packets, kinds in the given proportions, shuffled within each frame."""
    rng = random.Random(seed)
    pool = {kind: [Instrument(token(j * 10 + k, kind[1]), rng) for j in range(50)]
            for k, kind in enumerate(kinds)}
    order = [kind for kind, weight in kinds.items() for _ in range(weight)]
    out = []
    for f in range(n_packets // per_frame):
        layout = [order[(f * per_frame + i) % len(order)] for i in range(per_frame)]
        rng.shuffle(layout)
        out.append(codec.encode_frame([rng.choice(pool[kind]).packet(kind[0]) for kind in layout]))
    return out
