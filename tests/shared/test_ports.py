"""shared/ports.py: a port is handed out below the kernel's ephemeral range (no outgoing connection's local end
can take it) and to one process only while that process lives — two servers of one suite never race for a
number, and a server failing to bind is never answered for by another."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from shared import ports
from shared.natsd import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_a_port_is_outside_the_ephemeral_range_and_no_other_process_is_handed_it():
    port = free_port()
    low, high = ports.ephemeral_range()
    assert not low <= port <= high
    assert free_port() != port  # nor this process, twice
    other = subprocess.run([sys.executable, "-c", f"""
from shared import ports
ports.pool = lambda: range({port}, {port + 1})
try:
    print(ports.free_port())
except RuntimeError as e:
    print(e)
"""], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert other.stdout.strip() == f"no free port left in {port}-{port}", other.stdout + other.stderr


def test_a_port_is_free_again_when_its_holder_has_exited():
    held = subprocess.run([sys.executable, "-c", "from shared import ports; print(ports.free_port())"], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    port = int(held.stdout)
    fd = ports._reserve(port)
    assert fd is not None  # the kernel released the exited process's lock
    os.close(fd)
