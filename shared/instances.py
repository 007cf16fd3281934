"""Names of worker instances for partition ownership (``shared/partition.py``): a unique one per worker object,
or one that survives a restart on the same local state (held by a file lock the kernel drops with the process)."""

from __future__ import annotations

import fcntl
import hashlib
import itertools
import os
import re
import socket
from pathlib import Path
from typing import IO

_instances = itertools.count(1)


def instance_name() -> str:
    """Unique per worker object: host, pid and a counter (tests run several workers in one process)."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", f"{socket.gethostname()}-{os.getpid()}-{next(_instances)}")


def restartable_name(lock_path: Path) -> str:
    """The instance name of whoever holds ``lock_path`` on this host (``restartable_instance``)."""
    digest = hashlib.sha256(str(lock_path.resolve()).encode()).hexdigest()[:12]
    return re.sub(r"[^A-Za-z0-9_-]", "-", f"{socket.gethostname()}-{digest}")


def restartable_instance(lock_path: Path) -> tuple[str, IO] | None:
    """A name that survives a restart: this host and ``lock_path`` (a file in the worker's local state,
    e.g. the execution worker's journal directory), taken with an exclusive lock that the kernel drops
    when the process dies. So the name is never held by two live processes, and a worker SIGKILLed and
    started again is the same instance: its leases, still alive in KV for up to ``LEASE_SECONDS``, are its
    own (``Partitions.start`` takes them back) rather than a dead peer's to wait out. The file says the
    holder's pid. Returns (name, the open lock file: keep it, close it at shutdown), or None while another
    live worker holds the lock (copies sharing one data directory: the others keep per-process names)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    f = open(lock_path, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        return None
    f.truncate(0)
    f.write(f"{os.getpid()}\n")
    f.flush()
    return restartable_name(lock_path), f
