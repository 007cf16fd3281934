"""An inter-process lock around opening a shared SQLite file: copies of a worker started together on
one volume (see docs/architecture.md, "Scaling out") would otherwise race to switch it to WAL and
create its tables, and SQLite answers such a race with "database is locked" instead of waiting."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def opening(db_path: str | os.PathLike) -> Iterator[None]:
    """Hold ``<db>.lock`` (flock, released if the process dies) while the database is set up."""
    lock_path = Path(f"{db_path}.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
