"""Kite's binary tick protocol, both ways: the decoder the ticker worker runs on every frame, and
its encoder twin kite_sim uses, so one definition of the layout serves both (kite-connect.md §6.3).

Frame: ``[uint16 N][uint16 len1][packet1][uint16 len2][packet2]...``, big-endian; a 1-byte frame is
a heartbeat. A packet's kind is decided only by its length: 8 LTP, 28/32 index quote/full, 44/184
tradable quote/full. Integers are unsigned like the official clients (the index ``change`` field is
signed, but like them we compute change from last price and close instead of reading it).

Decoding is the hot path: one precompiled ``struct.Struct`` per packet kind, one ``unpack_from``
per packet, straight into the ``Tick`` Struct with no intermediate dicts.
"""

from __future__ import annotations

import struct

from shared.messages import OHLC, Depth, DepthItem, Tick, TickMode

HEARTBEAT = b"\x00"

SEGMENT_INDICES = 9
_DIVISORS = {3: 10_000_000, 6: 10_000, 12: 10_000}  # CDS, BCD, NCO; everything else is paise

_HEADER = struct.Struct(">H")
_LTP = struct.Struct(">II")
_INDEX_QUOTE = struct.Struct(">IIIIIIi")
_INDEX_FULL = struct.Struct(">IIIIIIiI")
_QUOTE = struct.Struct(">IIIIIIIIIII")
_FULL = struct.Struct(">" + "I" * 16 + "IIHxx" * 10)

LTP_SIZE, INDEX_QUOTE_SIZE, INDEX_FULL_SIZE, QUOTE_SIZE, FULL_SIZE = 8, 28, 32, 44, 184
assert (_LTP.size, _INDEX_QUOTE.size, _INDEX_FULL.size, _QUOTE.size, _FULL.size) == (8, 28, 32, 44, 184)

_LTP_MODE, _QUOTE_MODE, _FULL_MODE = TickMode.LTP.value, TickMode.QUOTE.value, TickMode.FULL.value


class CodecError(ValueError):
    """A frame or packet that does not follow the protocol."""


def divisor(token: int) -> int:
    """Price divisor from the segment in the token's low byte."""
    return _DIVISORS.get(token & 0xFF, 100)


def is_index(token: int) -> bool:
    return token & 0xFF == SEGMENT_INDICES


def _change(last: float, close: float) -> float:
    return (last - close) * 100 / close if close else 0.0


def decode_packet(pkt: bytes | memoryview, received_at: int = 0, offset: int = 0, size: int = -1) -> Tick:
    """One packet (``size`` bytes at ``offset`` of ``pkt``) to a Tick."""
    if size < 0:
        size = len(pkt) - offset
    token = _LTP.unpack_from(pkt, offset)[0] if size >= 4 else -1
    d = _DIVISORS.get(token & 0xFF, 100)
    tradable = token & 0xFF != SEGMENT_INDICES
    if size == QUOTE_SIZE or size == FULL_SIZE:
        if size == QUOTE_SIZE:
            v = _QUOTE.unpack_from(pkt, offset)
            mode = _QUOTE_MODE
        else:
            v = _FULL.unpack_from(pkt, offset)
            mode = _FULL_MODE
        last = v[1] / d
        close = v[10] / d
        tick = Tick(
            token,
            mode,
            tradable,
            last,
            v[2],
            v[3] / d,
            v[4],
            v[5],
            v[6],
            OHLC(v[7] / d, v[8] / d, v[9] / d, close),
            (last - close) * 100 / close if close else 0.0,
            received_at=received_at,
        )
        if size == FULL_SIZE:
            tick.last_trade_time = v[11]
            tick.oi = v[12]
            tick.oi_day_high = v[13]
            tick.oi_day_low = v[14]
            tick.exchange_timestamp = v[15]
            tick.depth = Depth(
                [DepthItem(v[i], v[i + 1] / d, v[i + 2]) for i in range(16, 31, 3)],
                [DepthItem(v[i], v[i + 1] / d, v[i + 2]) for i in range(31, 46, 3)],
            )
        return tick
    if size == LTP_SIZE:
        return Tick(token, _LTP_MODE, tradable, _LTP.unpack_from(pkt, offset)[1] / d, received_at=received_at)
    if size == INDEX_QUOTE_SIZE or size == INDEX_FULL_SIZE:
        full = size == INDEX_FULL_SIZE
        v = (_INDEX_FULL if full else _INDEX_QUOTE).unpack_from(pkt, offset)
        last, close = v[1] / d, v[5] / d
        return Tick(
            token,
            _FULL_MODE if full else _QUOTE_MODE,
            tradable,
            last,
            ohlc=OHLC(v[4] / d, v[2] / d, v[3] / d, close),
            change=_change(last, close),
            exchange_timestamp=v[7] if full else None,
            received_at=received_at,
        )
    raise CodecError(f"unknown packet length {size}")


_QUOTE_RECORD = struct.Struct(">H" + _QUOTE.format[1:])  # [len][44-byte packet], repeated


def _decode_uniform_quote(data, count: int, received_at: int) -> list[Tick] | None:
    """Fast path for the common frame: N quote packets back to back (one C-level iter_unpack)."""
    ticks = []
    append = ticks.append
    for v in _QUOTE_RECORD.iter_unpack(memoryview(data)[2:]):
        if v[0] != QUOTE_SIZE:
            return None
        token = v[1]
        seg = token & 0xFF
        d = _DIVISORS.get(seg, 100)
        last = v[2] / d
        close = v[11] / d
        append(Tick(token, _QUOTE_MODE, seg != SEGMENT_INDICES, last, v[3], v[4] / d, v[5], v[6], v[7],
                    OHLC(v[8] / d, v[9] / d, v[10] / d, close),
                    (last - close) * 100 / close if close else 0.0, received_at=received_at))
    return ticks


def decode_frame(data: bytes | bytearray | memoryview, received_at: int = 0) -> list[Tick]:
    """A binary WebSocket frame to its Ticks; heartbeats (and anything shorter than a header) to []."""
    n_bytes = len(data)
    if n_bytes < 4:
        return []
    count = _HEADER.unpack_from(data, 0)[0]
    if n_bytes == 2 + count * _QUOTE_RECORD.size:
        ticks = _decode_uniform_quote(data, count, received_at)
        if ticks is not None:
            return ticks
    ticks = []
    pos = 2
    for _ in range(count):
        if pos + 2 > n_bytes:
            raise CodecError(f"frame truncated: header of packet at byte {pos}")
        size = _HEADER.unpack_from(data, pos)[0]
        pos += 2
        if pos + size > n_bytes:
            raise CodecError(f"frame truncated: packet of {size} bytes at byte {pos}")
        ticks.append(decode_packet(data, received_at, pos, size))
        pos += size
    return ticks


# ---------------------------------------------------------------------------------------------
# Encoder (kite_sim, tests, benchmarks)


def _p(value: float, d: int) -> int:
    return int(round(value * d))


def encode_packet(tick: Tick) -> bytes:
    """A Tick to the packet Kite would send for it in ``tick.mode``.

    Index tokens (segment 9) get the index layouts; prices are scaled by the token's divisor."""
    token = tick.instrument_token
    d = divisor(token)
    mode = tick.mode
    if mode == _LTP_MODE:
        return _LTP.pack(token, _p(tick.last_price, d))
    o = tick.ohlc or OHLC()
    if is_index(token):
        change = _p(tick.last_price - o.close, d)
        if mode == _QUOTE_MODE:
            return _INDEX_QUOTE.pack(token, _p(tick.last_price, d), _p(o.high, d), _p(o.low, d), _p(o.open, d),
                                     _p(o.close, d), change)
        return _INDEX_FULL.pack(token, _p(tick.last_price, d), _p(o.high, d), _p(o.low, d), _p(o.open, d),
                                _p(o.close, d), change, tick.exchange_timestamp or 0)
    head = (
        token,
        _p(tick.last_price, d),
        tick.last_traded_quantity,
        _p(tick.average_traded_price, d),
        tick.volume_traded,
        tick.total_buy_quantity,
        tick.total_sell_quantity,
        _p(o.open, d),
        _p(o.high, d),
        _p(o.low, d),
        _p(o.close, d),
    )
    if mode == _QUOTE_MODE:
        return _QUOTE.pack(*head)
    if mode != _FULL_MODE:
        raise CodecError(f"unknown mode {mode!r}")
    depth = tick.depth or Depth()
    levels: list[int] = []
    for side in (depth.buy, depth.sell):
        items = list(side[:5]) + [DepthItem()] * (5 - min(5, len(side)))
        for item in items:
            levels += (item.quantity, _p(item.price, d), item.orders)
    return _FULL.pack(
        *head,
        tick.last_trade_time or 0,
        tick.oi,
        tick.oi_day_high,
        tick.oi_day_low,
        tick.exchange_timestamp or 0,
        *levels,
    )


def encode_frame(packets: list[bytes]) -> bytes:
    parts = [_HEADER.pack(len(packets))]
    for pkt in packets:
        parts.append(_HEADER.pack(len(pkt)))
        parts.append(pkt)
    return b"".join(parts)
