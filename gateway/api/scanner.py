"""The stock scanner: ``GET /api/scanner?min_price=100&rsi_below=30&symbols=NSE:INFY,NSE:TCS``.

Every condition of ``m.Scan`` is a query parameter (``min_price``, ``max_price``, ``min_volume``,
``volume_spike``, ``gap_up_pct``, ``gap_down_pct``, ``rsi_below``, ``rsi_above``, ``near_high_pct``,
``near_low_pct``, and ``rsi_period``, ``lookback_days``, ``volume_days``, ``sort_by``, ``limit``);
all given must hold. No ``symbols``: every NSE equity. A bad value → 400 naming the field."""

from __future__ import annotations

from litestar import Controller, Request, get

from gateway.scan_query import scan_command
from gateway.trading import Trading


class ScannerController(Controller):
    path = "/api"
    tags = ["market"]

    @get("/scanner")
    async def scanner(self, request: Request, trading: Trading, user_id: str) -> dict:
        """``{"as_of", "scanned", "matched", "rows": [{symbol, last_price, change_pct, gap_pct, volume,
        volume_ratio, rsi, high_52w, low_52w, ..., matched: [conditions in words]}]}``."""
        return await trading.scan(user_id, scan_command(request.query_params.multi_items()))
