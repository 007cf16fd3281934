"""Kite's binary tick protocol, both ways: the decoder the ticker worker runs on every frame, and
its encoder twin kite_sim uses, so one definition of the layout serves both (kite-connect.md §6.3).

Frame: ``[uint16 N][uint16 len1][packet1][uint16 len2][packet2]...``, big-endian; a 1-byte frame is
a heartbeat. A packet's kind is decided only by its length: 8 LTP, 28/32 index quote/full, 44/184
tradable quote/full. Integers are unsigned like the official clients (the index ``change`` field is
signed, but like them we compute change from last price and close instead of reading it).

Decoding is the hot path: one precompiled ``struct.Struct`` per packet kind, one ``unpack_from``
per packet (which also reads the next packet's length) straight into the ``Tick`` Struct, every field
positional (msgspec fills defaults slower than it takes arguments), depth levels as plain tuples, in
one loop with no call per packet (``bench/decode.py`` measures it on mixed frames, and the ticker
worker's path beside it). What is left is mostly allocating the Tick's objects.
"""

from __future__ import annotations

import struct

from shared.messages import OHLC, Depth, Tick, TickMode

HEARTBEAT = b"\x00"

SEGMENT_INDICES = 9
_DIVISORS = {3: 10_000_000, 6: 10_000, 12: 10_000}  # CDS, BCD, NCO; everything else is paise

_HEADER = struct.Struct(">H")
_LTP = struct.Struct(">II")
_INDEX_QUOTE = struct.Struct(">IIIIIIi")
_INDEX_FULL = struct.Struct(">IIIIIIiI")
_QUOTE = struct.Struct(">IIIIIIIIIII")
_FULL = struct.Struct(">" + "I" * 16 + "IIHxx" * 10)
# The decoder's: each layout followed by the NEXT packet's 2-byte length, read in the same call (the frame
# is given two zero bytes after its last packet, which end the loop and keep a truncated last packet an error).
_LTP_N, _INDEX_QUOTE_N, _INDEX_FULL_N, _QUOTE_N, _FULL_N = (
    struct.Struct(s.format + "H") for s in (_LTP, _INDEX_QUOTE, _INDEX_FULL, _QUOTE, _FULL))
_END = b"\0\0"

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


_DIV = tuple(_DIVISORS.get(seg, 100) for seg in range(256))  # by segment: an index, not a dict look-up

_SIZES = frozenset((FULL_SIZE, QUOTE_SIZE, LTP_SIZE, INDEX_FULL_SIZE, INDEX_QUOTE_SIZE))


def _decode(data, pos: int, count: int, received_at: int) -> list[Tick]:
    """``count`` packets from byte ``pos``, each after its 2-byte length, in ``data`` that ends with ``_END``.
    Each kind's fields (and the next packet's length) are unpacked in one call and go straight into the
    Tick; depth levels are tuples: no intermediate dicts, no call per field, as few objects as the Tick
    needs — allocating them is most of what decoding costs. Raises IndexError / struct.error on a
    truncated frame (the callers word it)."""
    ticks = []
    append = ticks.append
    full, quote, ltp = _FULL_N.unpack_from, _QUOTE_N.unpack_from, _LTP_N.unpack_from  # locals: once per packet
    tick_, ohlc_, depth_, div = Tick, OHLC, Depth, _DIV
    n = data[pos] << 8 | data[pos + 1]
    pos += 2
    for _ in range(count):
        if n == 184:  # FULL_SIZE, by frequency in kta's feeds (the strategies subscribe full)
            (token, last, ltq, atp, volume, tbq, tsq, open_, high, low, close, ltt, oi, oi_high, oi_low, ets,
             bq1, bp1, bo1, bq2, bp2, bo2, bq3, bp3, bo3, bq4, bp4, bo4, bq5, bp5, bo5,
             sq1, sp1, so1, sq2, sp2, so2, sq3, sp3, so3, sq4, sp4, so4, sq5, sp5, so5, nxt) = full(data, pos)
            seg = token & 0xFF
            d = div[seg]
            last /= d
            close /= d
            append(tick_(token, "full", seg != 9, last, ltq, atp / d, volume, tbq, tsq,
                         ohlc_(open_ / d, high / d, low / d, close), (last - close) * 100 / close if close else 0.0,
                         ltt, oi, oi_high, oi_low, ets,
                         depth_([(bq1, bp1 / d, bo1), (bq2, bp2 / d, bo2), (bq3, bp3 / d, bo3), (bq4, bp4 / d, bo4),
                                 (bq5, bp5 / d, bo5)],
                                [(sq1, sp1 / d, so1), (sq2, sp2 / d, so2), (sq3, sp3 / d, so3), (sq4, sp4 / d, so4),
                                 (sq5, sp5 / d, so5)]), received_at))
        elif n == 44:  # QUOTE_SIZE
            token, last, ltq, atp, volume, tbq, tsq, open_, high, low, close, nxt = quote(data, pos)
            seg = token & 0xFF
            d = div[seg]
            last /= d
            close /= d
            append(tick_(token, "quote", seg != 9, last, ltq, atp / d, volume, tbq, tsq,
                         ohlc_(open_ / d, high / d, low / d, close), (last - close) * 100 / close if close else 0.0,
                         None, 0, 0, 0, None, None, received_at))
        elif n == 8:  # LTP_SIZE
            token, last, nxt = ltp(data, pos)
            seg = token & 0xFF
            append(tick_(token, "ltp", seg != 9, last / div[seg], 0, 0.0, 0, 0, 0, None, 0.0, None, 0, 0, 0, None,
                         None, received_at))
        else:  # an index (segment 9): no quantities, its own layouts
            if n == 32:  # INDEX_FULL_SIZE
                token, last, high, low, open_, close, _change, ets, nxt = _INDEX_FULL_N.unpack_from(data, pos)
                mode = "full"
            elif n == 28:  # INDEX_QUOTE_SIZE
                token, last, high, low, open_, close, _change, nxt = _INDEX_QUOTE_N.unpack_from(data, pos)
                mode, ets = "quote", None
            else:
                raise CodecError(f"unknown packet length {n}")
            seg = token & 0xFF
            d = div[seg]
            last /= d
            close /= d
            append(tick_(token, mode, seg != 9, last, 0, 0.0, 0, 0, 0, ohlc_(open_ / d, high / d, low / d, close),
                         (last - close) * 100 / close if close else 0.0, None, 0, 0, 0, ets, None, received_at))
        pos += n + 2
        n = nxt
    return ticks


def decode_packet(pkt: bytes | memoryview, received_at: int = 0, offset: int = 0, size: int = -1) -> Tick:
    """One packet (``size`` bytes at ``offset`` of ``pkt``) to a Tick."""
    if size < 0:
        size = len(pkt) - offset
    if size not in _SIZES or offset + size > len(pkt):
        raise CodecError(f"unknown packet length {size}" if size not in _SIZES else "packet truncated")
    frame = b"".join((_HEADER.pack(size), pkt[offset:offset + size], _END))  # a frame of one
    return _decode(frame, 0, 1, received_at)[0]


def split_frame(data: bytes | bytearray | memoryview) -> list[bytes]:
    """A frame's packets (copies), every length checked: CodecError before anything is used."""
    n_bytes = len(data)
    if n_bytes < 4:
        return []
    if type(data) is not bytes:
        data = bytes(data)  # slices of bytes are bytes: one copy of the frame, none per packet
    packets: list[bytes] = []
    append, sizes = packets.append, _SIZES
    pos = 2
    try:
        for _ in range(data[0] << 8 | data[1]):
            size = data[pos] << 8 | data[pos + 1]
            pos += 2
            end = pos + size
            if end > n_bytes or size not in sizes:
                raise CodecError(f"frame truncated: packet of {size} bytes at byte {pos}" if end > n_bytes
                                 else f"unknown packet length {size}")
            append(data[pos:end])
            pos = end
    except IndexError:
        raise CodecError(f"frame truncated: header of packet at byte {pos}") from None
    return packets


def decode_frame(data: bytes | bytearray | memoryview, received_at: int = 0) -> list[Tick]:
    """A binary WebSocket frame to its Ticks; heartbeats (and anything shorter than a header) to []."""
    if len(data) < 4:
        return []
    count = data[0] << 8 | data[1]
    try:
        return _decode(b"".join((data, _END)), 2, count, received_at)
    except (IndexError, struct.error):
        raise CodecError(f"frame truncated: {count} packets announced in {len(data)} bytes") from None


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
        for quantity, price, orders in list(side[:5]) + [(0, 0.0, 0)] * (5 - min(5, len(side))):
            levels += (quantity, _p(price, d), orders)
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
