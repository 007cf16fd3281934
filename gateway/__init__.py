"""kta: gateway."""
