"""Kite's binary tick protocol, both ways: the decoder the ticker worker runs on every frame, and
its encoder twin kite_sim uses, so one definition of the layout serves both (kite-connect.md §6.3).

Frame: ``[uint16 N][uint16 len1][packet1][uint16 len2][packet2]...``, big-endian; a 1-byte frame is
a heartbeat. A packet's kind is decided only by its length: 8 LTP, 28/32 index quote/full, 44/184
tradable quote/full. Integers are unsigned like the official clients (the index ``change`` field is
signed, but like them we compute change from last price and close instead of reading it).

Decoding is the hot path: one precompiled ``struct.Struct`` per packet kind, one ``unpack_from``
per packet (one ``iter_unpack`` per frame when every packet is the same kind), straight into the
``Tick`` Struct with no intermediate dicts or loops (``bench/decode.py`` measures it on mixed frames).
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


_DIV = tuple(_DIVISORS.get(seg, 100) for seg in range(256))  # by segment: an index, not a dict look-up

# Each builder takes one packet's fields, as its layout above unpacks them, as positional parameters:
# no indexing, no loop, one Struct call per object — that is most of what decoding costs. ``_next``
# takes the following packet's length header when a uniform frame is unpacked as [packet][len] records.


def _ltp(token, last, _next=0) -> Tick:
    seg = token & 0xFF
    return Tick(token, _LTP_MODE, seg != SEGMENT_INDICES, last / _DIV[seg])


def _index_quote(token, last, high, low, open_, close, _change, _next=0) -> Tick:
    seg = token & 0xFF
    d = _DIV[seg]
    last /= d
    close /= d
    return Tick(token, _QUOTE_MODE, seg != SEGMENT_INDICES, last, 0, 0.0, 0, 0, 0,
                OHLC(open_ / d, high / d, low / d, close), (last - close) * 100 / close if close else 0.0)


def _index_full(token, last, high, low, open_, close, _change, ets, _next=0) -> Tick:
    seg = token & 0xFF
    d = _DIV[seg]
    last /= d
    close /= d
    return Tick(token, _FULL_MODE, seg != SEGMENT_INDICES, last, 0, 0.0, 0, 0, 0,
                OHLC(open_ / d, high / d, low / d, close), (last - close) * 100 / close if close else 0.0,
                None, 0, 0, 0, ets)


def _quote(token, last, ltq, atp, volume, tbq, tsq, open_, high, low, close, _next=0) -> Tick:
    seg = token & 0xFF
    d = _DIV[seg]
    last /= d
    close /= d
    return Tick(token, _QUOTE_MODE, seg != SEGMENT_INDICES, last, ltq, atp / d, volume, tbq, tsq,
                OHLC(open_ / d, high / d, low / d, close), (last - close) * 100 / close if close else 0.0)


def _full(token, last, ltq, atp, volume, tbq, tsq, open_, high, low, close, ltt, oi, oi_high, oi_low, ets,
          bq1, bp1, bo1, bq2, bp2, bo2, bq3, bp3, bo3, bq4, bp4, bo4, bq5, bp5, bo5,
          sq1, sp1, so1, sq2, sp2, so2, sq3, sp3, so3, sq4, sp4, so4, sq5, sp5, so5, _next=0) -> Tick:
    seg = token & 0xFF
    d = _DIV[seg]
    last /= d
    close /= d
    return Tick(token, _FULL_MODE, seg != SEGMENT_INDICES, last, ltq, atp / d, volume, tbq, tsq,
                OHLC(open_ / d, high / d, low / d, close), (last - close) * 100 / close if close else 0.0,
                ltt, oi, oi_high, oi_low, ets,
                Depth([DepthItem(bq1, bp1 / d, bo1), DepthItem(bq2, bp2 / d, bo2), DepthItem(bq3, bp3 / d, bo3),
                       DepthItem(bq4, bp4 / d, bo4), DepthItem(bq5, bp5 / d, bo5)],
                      [DepthItem(sq1, sp1 / d, so1), DepthItem(sq2, sp2 / d, so2), DepthItem(sq3, sp3 / d, so3),
                       DepthItem(sq4, sp4 / d, so4), DepthItem(sq5, sp5 / d, so5)]))


# packet length -> (its layout, its [packet][next length] record layout, builder)
_KINDS = {size: (layout, struct.Struct(layout.format + "H"), build) for size, layout, build in (
    (FULL_SIZE, _FULL, _full), (QUOTE_SIZE, _QUOTE, _quote), (LTP_SIZE, _LTP, _ltp),
    (INDEX_FULL_SIZE, _INDEX_FULL, _index_full), (INDEX_QUOTE_SIZE, _INDEX_QUOTE, _index_quote))}


def decode_packet(pkt: bytes | memoryview, received_at: int = 0, offset: int = 0, size: int = -1) -> Tick:
    """One packet (``size`` bytes at ``offset`` of ``pkt``) to a Tick."""
    if size < 0:
        size = len(pkt) - offset
    kind = _KINDS.get(size)
    if kind is None or offset + size > len(pkt):
        raise CodecError(f"unknown packet length {size}" if kind is None else "packet truncated")
    tick = kind[2](*kind[0].unpack_from(pkt, offset))
    tick.received_at = received_at
    return tick


def split_frame(data: bytes | bytearray | memoryview) -> list[bytes]:
    """A frame's packets (copies), every length checked: CodecError before anything is used."""
    n_bytes = len(data)
    if n_bytes < 4:
        return []
    packets = []
    pos = 2
    for _ in range(data[0] << 8 | data[1]):
        if pos + 2 > n_bytes:
            raise CodecError(f"frame truncated: header of packet at byte {pos}")
        size = data[pos] << 8 | data[pos + 1]
        pos += 2
        end = pos + size
        if end > n_bytes:
            raise CodecError(f"frame truncated: packet of {size} bytes at byte {pos}")
        if size not in _KINDS:
            raise CodecError(f"unknown packet length {size}")
        packets.append(bytes(data[pos:end]))
        pos = end
    return packets


def _uniform(data, count: int, received_at: int) -> list[Tick] | None:
    """A frame whose packets are all of the first one's kind: one C-level ``iter_unpack`` over
    [packet][next packet's length] records (the last one given its length as padding)."""
    size = data[2] << 8 | data[3]
    kind = _KINDS.get(size)
    if kind is None or len(data) != 2 + count * (size + 2):
        return None
    build = kind[2]
    records = bytearray(memoryview(data)[4:])
    records += data[2:4]
    ticks = []
    append = ticks.append
    for v in kind[1].iter_unpack(records):
        if v[-1] != size:
            return None
        tick = build(*v)
        tick.received_at = received_at
        append(tick)
    return ticks


def decode_frame(data: bytes | bytearray | memoryview, received_at: int = 0) -> list[Tick]:
    """A binary WebSocket frame to its Ticks; heartbeats (and anything shorter than a header) to []."""
    if len(data) < 4:
        return []
    count = data[0] << 8 | data[1]
    ticks = _uniform(data, count, received_at)
    if ticks is not None:
        return ticks
    ticks = []
    append = ticks.append
    full, full_layout = _full, _FULL.unpack_from  # locals: this loop runs once per packet
    pos = 2
    try:
        for _ in range(count):
            size = data[pos] << 8 | data[pos + 1]
            pos += 2
            if size == 184:  # FULL_SIZE; by frequency in kta's feeds (strategies subscribe full)
                tick = full(*full_layout(data, pos))
            elif size == INDEX_FULL_SIZE:
                tick = _index_full(*_INDEX_FULL.unpack_from(data, pos))
            elif size == QUOTE_SIZE:
                tick = _quote(*_QUOTE.unpack_from(data, pos))
            elif size == LTP_SIZE:
                tick = _ltp(*_LTP.unpack_from(data, pos))
            elif size == INDEX_QUOTE_SIZE:
                tick = _index_quote(*_INDEX_QUOTE.unpack_from(data, pos))
            else:
                raise CodecError(f"unknown packet length {size}")
            tick.received_at = received_at
            append(tick)
            pos += size
    except (IndexError, struct.error):
        raise CodecError(f"frame truncated: packet {len(ticks) + 1} of {count} at byte {pos}") from None
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
