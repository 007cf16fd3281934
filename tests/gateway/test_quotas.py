"""The gateway refuses what is over a user's quota before it reaches a worker (the strategy worker
checks again): a 4xx naming the body's field and the setting that sets the limit."""

import pytest

from gateway.trading import Trading, TradingError
from tests.helpers import stack_settings


async def test_symbols_per_strategy_and_live_symbols_per_user(bus, data_dir):
    settings = stack_settings(bus.nc.connected_url.geturl(), data_dir, max_symbols_per_strategy=2,
                              max_live_tokens_per_user=3)
    trading = Trading(bus, settings)
    try:
        with pytest.raises(TradingError) as e:
            await trading.add_strategy("DEMO01", "rsi", {}, [408065, 2953217, 424961])
        assert (e.value.status, e.value.field, e.value.code) == (400, "symbols", "quota")
        assert "KTA_MAX_SYMBOLS_PER_STRATEGY" in e.value.message
        with pytest.raises(TradingError) as e:
            await trading.start_live("DEMO01", [408065, 2953217, 424961, 969473])
        assert (e.value.status, e.value.field, e.value.code) == (400, "symbols", "quota")
        assert "KTA_MAX_LIVE_TOKENS_PER_USER" in e.value.message
    finally:
        await trading.close()
