"""The scanner and the strategy warm-up read history from the candle store: Kite is asked once for what the
store lacks, a fresh scanner (a restarted worker) asks it for nothing and gets the same figures."""

from __future__ import annotations

from shared import messages as m
from shared.candles.store import CandleStore
from shared.kite.client import KiteClient
from strategy_worker.scanner import Scanner
from tests.simkit import login

SYMBOLS = ["NSE:INFY", "NSE:TCS", "NSE:ITC"]


async def test_scanner_history_comes_from_the_store(sim, tmp_path):
    store = CandleStore(tmp_path / "candles")
    async with KiteClient(sim.api_key, login(sim), root=sim.root) as kite:
        instruments = await kite.instruments()
        cmd = m.Scan(symbols=SYMBOLS, rsi_below=100, lookback_days=60, sort_by="symbol")
        first = await Scanner(store).scan(kite, instruments, cmd)
        assert first["history_fetched"] == len(SYMBOLS) and first["universe"] == "the 3 symbol(s) given"
        again = await Scanner(store).scan(kite, instruments, cmd)  # a restarted worker: nothing in memory
        assert again["history_fetched"] == 0
        # the figures from completed days only (RSI and the range also take today's moving price)
        assert [(r["symbol"], r["days"], r["avg_volume"]) for r in again["rows"]] == \
            [(r["symbol"], r["days"], r["avg_volume"]) for r in first["rows"]]
