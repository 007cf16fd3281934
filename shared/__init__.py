"""kta: shared."""
