"""Tick decode throughput: kta's codec vs the official client's ``KiteTicker._parse_binary``.

Same 1,000,000 quote-mode packets (in frames of 100, as a busy Kite feed sends them) through both
decoders. Target: >= 5x the official parser. Usage: python bench/decode.py [packets]
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kiteconnect import KiteTicker  # noqa: E402

from shared.kite import codec  # noqa: E402
from shared.messages import OHLC, Tick  # noqa: E402


def frames(n_packets: int, per_frame: int = 100, seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for _ in range(n_packets // per_frame):
        pkts = []
        for _ in range(per_frame):
            p = rng.uniform(100, 30000)
            t = Tick(rng.randrange(1, 2**20) * 256 + 1, "quote", True, round(p, 2), rng.randrange(1, 500),
                     round(p, 2), rng.randrange(10**7), rng.randrange(10**6), rng.randrange(10**6),
                     OHLC(round(p * 0.99, 2), round(p * 1.01, 2), round(p * 0.98, 2), round(p, 2)))
            pkts.append(codec.encode_packet(t))
        out.append(codec.encode_frame(pkts))
    return out


def rate(fn, data) -> float:
    start = time.perf_counter()
    n = 0
    for frame in data:
        n += len(fn(frame))
    return n / (time.perf_counter() - start)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    data = frames(n)
    official = KiteTicker("key", "token")
    ours = rate(codec.decode_frame, data)
    theirs = rate(official._parse_binary, data)
    print(f"packets: {n:,} quote-mode in frames of 100")
    print(f"kta codec.decode_frame        : {ours:>12,.0f} packets/s  ({1e6 / ours:.2f} µs/packet)")
    print(f"kiteconnect _parse_binary     : {theirs:>12,.0f} packets/s  ({1e6 / theirs:.2f} µs/packet)")
    print(f"ratio vs official parser      : {ours / theirs:.1f}x  (target >= 5x)")


if __name__ == "__main__":
    main()
