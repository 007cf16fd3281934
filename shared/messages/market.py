"""Market data: ticks as decoded from the feed, and bars built from them."""

from __future__ import annotations


from msgspec import Struct, field


class OHLC(Struct, array_like=True, gc=False):
    open: float = 0.0
    high: float = 0.0
    low: float = 0.0
    close: float = 0.0


# One level of the order book: ``(quantity, price, orders)``. A tuple, not a Struct: the decoder builds ten
# for every full tick and a tuple costs about a third as much; on the wire it is the same msgpack array as
# the array-like Struct it replaced (``bench/decode.py``).
DepthItem = tuple[int, float, int]


class Depth(Struct, array_like=True, gc=False):
    buy: list[DepthItem] = field(default_factory=list)
    sell: list[DepthItem] = field(default_factory=list)


class Tick(Struct, array_like=True, gc=False):
    """One decoded packet of Kite's binary feed (field names as pykiteconnect's).

    Prices are rupees (float); ``change`` is percent vs the previous close; timestamps are
    epoch seconds of the exchange; ``received_at`` is kta's decode time in epoch ns.
    """

    instrument_token: int
    mode: str
    tradable: bool
    last_price: float
    last_traded_quantity: int = 0
    average_traded_price: float = 0.0
    volume_traded: int = 0
    total_buy_quantity: int = 0
    total_sell_quantity: int = 0
    ohlc: OHLC | None = None
    change: float = 0.0
    last_trade_time: int | None = None
    oi: int = 0
    oi_day_high: int = 0
    oi_day_low: int = 0
    exchange_timestamp: int | None = None
    depth: Depth | None = None
    received_at: int = 0


class Bar(Struct, frozen=True, array_like=True, gc=False):
    """A completed candle; ``start`` is the bar's open time in epoch seconds (IST-aligned).

    ``after_gap`` is True when a feed gap was reported inside the bar's span, so a strategy can
    tell the bar is built from incomplete data.
    """

    instrument_token: int
    interval: str
    start: int
    open: float
    high: float
    low: float
    close: float
    volume: int = 0
    oi: int = 0
    after_gap: bool = False
