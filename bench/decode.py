"""Tick decode: kta's codec vs the official client's parser (``KiteTicker._parse_binary``) on the same frames.

Fair baseline: the official parser, in this process, on the same bytes. Frames of 100 packets with
realistic content (``bench/feed.py``): the MIXED frame (ltp/quote/full, index and tradable in kta's live
proportions) is the figure (target >= 8x); each packet kind alone is printed too, and uniform quote
frames — what the original design subscribes (``mode="quote"``) and the old README's figure measured.
Times are CPU seconds of this process (load on a shared machine stretches wall time, not CPU time);
the two parsers take turns every 10 frames of the same data (both see the same moments of a shared
machine's load); min / median / max of the ratio over the runs. Usage: python bench/decode.py [packets per kind] [runs]
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kiteconnect import KiteTicker  # noqa: E402

from bench.feed import MIX, frames  # noqa: E402
from bench.stack import machine_load  # noqa: E402
from shared.kite import codec  # noqa: E402

TARGET = 8.0
CASES = [("mixed (the figure)", MIX), ("full, tradable", {("full", False): 1}), ("full, index", {("full", True): 1}),
         ("quote, tradable", {("quote", False): 1}), ("quote, index", {("quote", True): 1}),
         ("ltp", {("ltp", False): 1}), ("quote uniform (original design)", {("quote", False): 1})]


CHUNK = 10  # frames per turn


def paired(ours, theirs, data: list[bytes]) -> tuple[float, float]:
    """CPU seconds per packet of ``ours`` and ``theirs`` over the same frames, taking turns every CHUNK
    frames: on a shared machine the load changes within a run, and both parsers see the same moments."""
    mine = official = 0.0
    n = 0
    clock = time.process_time
    for i in range(0, len(data), CHUNK):
        chunk = data[i:i + CHUNK]
        t0 = clock()
        for frame in chunk:
            n += len(ours(frame))
        t1 = clock()
        for frame in chunk:
            theirs(frame)
        official += clock() - t1
        mine += t1 - t0
    return mine / n, official / n


def as_the_ticker(frame: bytes) -> list:
    """The ticker worker's path for a frame of new ticks: split into packets (copies, kept for its
    de-duplication) and the frame decoded (ticker_worker/hub.py ``publish_packets``)."""
    codec.split_frame(frame)
    return codec.decode_frame(frame, 1)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    official = KiteTicker("key", "token")
    print(f"{n:,} packets per case in frames of 100, {runs} runs, CPU time (process_time: load stretches wall "
          f"time, not CPU time), the parsers taking turns every {CHUNK} frames; ratio = official µs / kta µs; "
          f"{machine_load()}")
    print(f"{'case':34} {'kta µs/pkt':>11} {'official µs':>12} {'ratio min / median / max':>26}")
    figure, medians = 0.0, {}
    for name, kinds in CASES:
        data = frames(kinds, n, seed=len(name))
        for frame in data[:5]:  # both parsers read the same ticks
            assert [t.instrument_token for t in codec.decode_frame(frame)] == [
                d["instrument_token"] for d in official._parse_binary(frame)]
        ours, theirs = [], []
        for _ in range(runs):
            o, t = paired(codec.decode_frame, official._parse_binary, data)
            ours.append(o)
            theirs.append(t)
        ratios = sorted(t / o for o, t in zip(ours, theirs))
        print(f"{name:34} {statistics.median(ours) * 1e6:>11.2f} {statistics.median(theirs) * 1e6:>12.2f} "
              f"{ratios[0]:>9.1f}x / {statistics.median(ratios):.1f}x / {ratios[-1]:.1f}x")
        medians[name] = (statistics.median(ours), statistics.median(theirs))
        if kinds is MIX:
            figure = statistics.median(ratios)
    data = frames(MIX, n, seed=len("mixed (the figure)"))
    hub, theirs = [], []
    for _ in range(runs):
        o, t = paired(as_the_ticker, official._parse_binary, data)
        hub.append(o)
        theirs.append(t)
    ratios = sorted(t / o for o, t in zip(hub, theirs))
    print(f"{'mixed, as the ticker worker runs':34} {statistics.median(hub) * 1e6:>11.2f} "
          f"{statistics.median(theirs) * 1e6:>12.2f} {ratios[0]:>9.1f}x / {statistics.median(ratios):.1f}x / "
          f"{ratios[-1]:.1f}x   (split_frame for its de-duplication + decode_frame: ticker_worker/hub.py)")
    design = medians["quote uniform (original design)"][1]  # what the original design runs: quote frames, official
    ours_mixed, ours_full = medians["mixed (the figure)"][0], medians["full, tradable"][0]
    print(f"figure: mixed frames decode {figure:.1f}x the official parser on the same frames (fair; median; target >= "
          f"{TARGET:g}x); full tradable {medians['full, tradable'][1] / ours_full:.1f}x, quote "
          f"{medians['quote, tradable'][1] / medians['quote, tradable'][0]:.1f}x; vs the original design (official parser "
          f"on its uniform quote frames, {design * 1e6:.2f} µs/pkt): mixed {design / ours_mixed:.1f}x, full "
          f"{design / ours_full:.1f}x faster per packet; {machine_load()}")


if __name__ == "__main__":
    main()
