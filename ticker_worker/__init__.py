"""kta: ticker_worker."""
