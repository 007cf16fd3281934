"""Issue #18: the journal's commits never copy the write-ahead log back into the database file themselves — a
checkpoint (with its fsync) inside a commit on the hot path took 3-75 ms, every ~200 commits; a thread of its own
does it, after commits."""

from execution_worker.journal import ACCEPTED, Journal
from shared import wal
from tests.execution_worker.kit import signal
from tests.helpers import eventually

PAGES = 1000  # SQLite's automatic checkpoint: in the commit that finds the log past this many pages


def logged_pages(path) -> int:
    wal_file = path.with_name(path.name + "-wal")
    return wal_file.stat().st_size // 4096 if wal_file.exists() else 0


def test_no_commit_checkpoints_the_log_itself(tmp_path, monkeypatch):
    monkeypatch.setattr(wal, "EVERY", 3600.0)  # the checkpoint thread waits it out: only commits could copy
    path = tmp_path / "journal.db"
    journal = Journal(path)
    try:
        before = path.stat().st_size
        for n in range(3000):  # well past PAGES in the log (each commit logs a few)
            journal.record_signal(signal(f"wal-{n:05d}"), ACCEPTED)
        assert path.stat().st_size == before  # nothing copied back by a commit
        assert logged_pages(path) > PAGES
        assert journal.signal_decision("wal-00000") == ACCEPTED  # read from the log
    finally:
        journal.close()


async def test_the_log_is_checkpointed_after_commits(tmp_path, monkeypatch):
    monkeypatch.setattr(wal, "EVERY", 0.05)
    path = tmp_path / "journal.db"
    journal = Journal(path)
    try:
        before = path.stat().st_size
        for n in range(50):
            journal.record_signal(signal(f"wal-{n:05d}"), ACCEPTED)
        await eventually(lambda: path.stat().st_size > before, what="the log copied into the database file")
    finally:
        journal.close()
    reopened = Journal(path)
    try:
        assert reopened.signal_decision("wal-00049") == ACCEPTED
    finally:
        reopened.close()
