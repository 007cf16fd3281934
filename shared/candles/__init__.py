"""The local candle store (Parquet month files), its Kite fetcher, CSV import and instrument snapshots."""

from shared.candles.store import Candles, CandleError, CandleStore, check_interval, day_bounds

__all__ = ["Candles", "CandleError", "CandleStore", "check_interval", "day_bounds"]
