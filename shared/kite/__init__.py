"""kta: shared/kite."""
