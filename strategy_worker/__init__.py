"""kta: strategy_worker."""
