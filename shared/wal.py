"""WAL checkpoints off the writer's thread.

SQLite in WAL mode copies the log back into the database file (a checkpoint, with its fsync) inside the
commit that finds the log past 1,000 pages: every ~200 commits of the execution journal one of them took
3-75 ms instead of ~0.1 ms, and that commit is on the hot path (a signal's decision, an order journaled
as SUBMITTING before its POST; issue #18; on this machine the mean commit was 226-294 µs with automatic
checkpoints and 109-145 µs without). ``Checkpoints`` turns them off on the writer's connection and runs
them from a thread of their own on a connection of its own, a second after commits (``PASSIVE``: it never
blocks the writer, and copies what no reader still needs; a busy database is simply tried again after the
next commit). Durability is SQLite's as before: what is committed is in the log, which survives a killed
process; the checkpoint only moves it into the main file."""

from __future__ import annotations

import logging
import sqlite3
import threading
import weakref
from pathlib import Path

log = logging.getLogger("kta.wal")
EVERY = 1.0  # s between checkpoints while commits keep coming


class Checkpoints:
    """Checkpoints of the database at ``path`` for the writer ``conn`` (in WAL mode): call ``committed``
    after its commits, ``close`` before closing it."""

    def __init__(self, conn: sqlite3.Connection, path: str | Path, every: float | None = None) -> None:
        conn.execute("PRAGMA wal_autocheckpoint=0")
        every = EVERY if every is None else every
        self._wanted = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=_run, args=(str(path), self._wanted, self._stop, every),
                                        name=f"wal-checkpoint:{Path(path).name}", daemon=True)
        self._thread.start()
        # a writer dropped without ``close`` (a test's) stops its thread too (which holds no reference to it)
        self._finalizer = weakref.finalize(self, _stop, self._wanted, self._stop)

    def committed(self) -> None:
        if not self._wanted.is_set():
            self._wanted.set()

    def close(self) -> None:
        self._finalizer()
        self._thread.join(timeout=5)


def _stop(wanted: threading.Event, stop: threading.Event) -> None:
    stop.set()
    wanted.set()


def _run(path: str, wanted: threading.Event, stop: threading.Event, every: float) -> None:
    conn = None
    try:
        while True:
            wanted.wait()
            if stop.wait(every):  # commits within the second ride on the same checkpoint
                return
            wanted.clear()
            try:
                if conn is None:
                    conn = sqlite3.connect(path, check_same_thread=False)
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as e:  # busy, or the file went away: tried again after the next commit
                log.debug("checkpoint of %s not done: %r", path, e)
    finally:
        if conn is not None:
            conn.close()
