"""kta: execution_worker."""
