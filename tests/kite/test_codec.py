"""The tick codec: encode→decode round trips, agreement with the official client's parser on the
same packets, and the official mock packets decoding to the documented values."""

import base64
import struct
from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kiteconnect import KiteTicker

from shared.kite import codec
from shared.messages import OHLC, Depth, Tick

pytestmark = pytest.mark.slow(seconds=16)


official = KiteTicker("key", "token")

u32 = st.integers(0, 2**31 - 1)
segments = st.sampled_from([1, 2, 3, 4, 5, 6, 7, 9, 12])


@st.composite
def ticks(draw, only_mode: str | None = None, tradable: bool = False):
    seg = draw(st.sampled_from([1, 2, 3, 4, 5, 6, 7, 12]) if tradable else segments)
    token = draw(st.integers(1, 2**23)) * 256 + seg
    d = codec.divisor(token)
    price = lambda: draw(u32) / d  # noqa: E731 - exact on the wire grid
    index = seg == codec.SEGMENT_INDICES
    modes = [only_mode] if only_mode else ["ltp", "quote", "full"]
    mode = draw(st.sampled_from(modes))
    if mode == "ltp":
        return Tick(token, mode, not index, price())
    ohlc = OHLC(price(), price(), price(), price())
    if index:
        return Tick(token, mode, False, price(), ohlc=ohlc,
                    exchange_timestamp=draw(u32) if mode == "full" else None)
    t = Tick(token, mode, True, price(), draw(u32), price(), draw(u32), draw(u32), draw(u32), ohlc)
    if mode == "full":
        t.last_trade_time, t.oi, t.oi_day_high, t.oi_day_low, t.exchange_timestamp = (draw(u32) for _ in range(5))
        lvl = lambda: (draw(u32), price(), draw(st.integers(0, 65535)))  # noqa: E731
        t.depth = Depth([lvl() for _ in range(5)], [lvl() for _ in range(5)])
    return t


def normalised(t: Tick) -> Tick:
    """The change field is derived, not encoded."""
    t.change = 0.0
    return t


@settings(max_examples=300, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ticks(), min_size=1, max_size=8))
def test_encode_decode_round_trip(batch):
    frame = codec.encode_frame([codec.encode_packet(t) for t in batch])
    decoded = codec.decode_frame(frame)
    assert [normalised(t) for t in decoded] == [normalised(t) for t in batch]


def _ts(value):
    return int(value.timestamp()) if isinstance(value, datetime) else value


def as_official(t: Tick) -> dict:
    d = {"tradable": t.tradable, "mode": t.mode, "instrument_token": t.instrument_token, "last_price": t.last_price}
    if t.mode == "ltp":
        return d
    d["ohlc"] = {"open": t.ohlc.open, "high": t.ohlc.high, "low": t.ohlc.low, "close": t.ohlc.close}
    d["change"] = t.change
    if t.tradable:
        d.update(last_traded_quantity=t.last_traded_quantity, average_traded_price=t.average_traded_price,
                 volume_traded=t.volume_traded, total_buy_quantity=t.total_buy_quantity,
                 total_sell_quantity=t.total_sell_quantity)
    if t.mode == "full":
        d["exchange_timestamp"] = t.exchange_timestamp
        if t.tradable:
            d.update(last_trade_time=t.last_trade_time, oi=t.oi, oi_day_high=t.oi_day_high, oi_day_low=t.oi_day_low,
                     depth={side: [{"quantity": q, "price": p, "orders": o} for q, p, o in items]
                            for side, items in (("buy", t.depth.buy), ("sell", t.depth.sell))})
    return d


@settings(max_examples=300, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ticks(), min_size=1, max_size=8))
def test_decode_agrees_with_official_parse_binary(batch):
    frame = codec.encode_frame([codec.encode_packet(t) for t in batch])
    theirs = official._parse_binary(frame)
    for key in ("exchange_timestamp", "last_trade_time"):
        for d in theirs:
            if key in d:
                d[key] = _ts(d[key])
    assert [as_official(t) for t in codec.decode_frame(frame)] == theirs


def test_official_mock_quote_packet(kite_mocks):
    pkt = base64.b64decode((kite_mocks / "ticker_quote.packet").read_text().strip())
    t = codec.decode_packet(pkt)
    assert (t.instrument_token, t.mode, t.last_price, t.last_traded_quantity) == (408065, "quote", 1573.15, 1)
    assert (t.average_traded_price, t.volume_traded, t.total_buy_quantity, t.total_sell_quantity) == (
        1570.33, 1175986, 256511, 360503)
    assert t.ohlc == OHLC(1569.15, 1575.0, 1561.05, 1567.8)
    assert codec.encode_packet(t) == pkt


def test_official_mock_full_packet(kite_mocks):
    pkt = base64.b64decode((kite_mocks / "ticker_full.packet").read_text().strip())
    t = codec.decode_packet(pkt)
    assert t.mode == "full" and t.exchange_timestamp == 1625461887 and t.last_price == 1573.7
    assert t.depth.buy[0] == (5, 1573.4, 1)
    assert codec.encode_packet(t) == pkt


def test_heartbeat_and_garbage():
    assert codec.decode_frame(codec.HEARTBEAT) == []
    with pytest.raises(codec.CodecError):
        codec.decode_frame(struct.pack(">HH", 1, 30) + b"\x00" * 30)  # no such packet length
    with pytest.raises(codec.CodecError):
        codec.decode_frame(struct.pack(">HH", 2, 8) + b"\x00" * 8)  # second packet missing


@settings(max_examples=100, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ticks(), min_size=1, max_size=6), st.integers(1, 8))
def test_a_frame_cut_short_is_an_error_by_even_one_byte(batch, cut):
    """The decoder reads each packet with the next one's length and pads the frame's end: a last packet
    missing a byte or two must still be refused, not read from the padding."""
    frame = codec.encode_frame([codec.encode_packet(t) for t in batch])
    with pytest.raises(codec.CodecError):
        codec.decode_frame(frame[:-cut])
    with pytest.raises(codec.CodecError):  # the ticker's split, for its de-duplication, refuses it too
        codec.split_frame(frame[:-cut])
    assert len(codec.decode_frame(memoryview(frame))) == len(batch) == len(codec.decode_frame(bytearray(frame)))
    assert codec.split_frame(memoryview(frame)) == codec.split_frame(frame) == [codec.encode_packet(t) for t in batch]


def test_divisors_follow_segment():
    assert codec.divisor(408065) == 100 and codec.divisor(256265) == 100
    assert codec.divisor(0x103) == 10_000_000 and codec.divisor(0x106) == 10_000
    assert codec.decode_packet(codec.encode_packet(Tick(256265, "ltp", False, 24500.05))).tradable is False


@settings(max_examples=50, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ticks("quote", tradable=True), min_size=1, max_size=30))
def test_uniform_quote_frames_take_the_fast_path_and_agree(batch):
    frame = codec.encode_frame([codec.encode_packet(t) for t in batch])
    fast = codec.decode_frame(frame)
    slow = [codec.decode_packet(codec.encode_packet(t)) for t in batch]
    assert fast == slow
    assert [as_official(t) for t in fast] == official._parse_binary(frame)
