"""Ports for the servers kta starts on this machine (``kta up``'s nats-server and kite_sim, the tests' and the
benchmarks' servers): each handed out once, and a wait that ends only when the server started for a port is
the one listening on it.

Binding port 0 and closing the socket (the usual idiom) hands out a number the kernel hands out again — to the
next process doing the same and to any outgoing connection's local end — until the server it was meant for
binds it; a server that then fails to bind exits, and another listener answers in its place (a 404 from the
wrong server, then "connection refused" once that one stops). So a port here comes from below the kernel's
ephemeral range (no outgoing connection is given one), and is reserved by an exclusive ``flock`` on a file
named after it in a directory every process on the machine shares: no other process is handed it while the
reserving process lives (the kernel releases the lock when the process exits, however it exits).
"""

from __future__ import annotations

import fcntl
import os
import random
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

RESERVATIONS = Path(tempfile.gettempdir()) / f"kta-ports-{os.getuid()}"
LOWEST = 20000  # below: ray's worker ports (10002-19999) and most services' well-known ones
_held: dict[int, int] = {}  # port -> the descriptor whose lock reserves it (open until this process exits)
_lock = threading.Lock()
_random = random.Random()  # seeded from the OS: tests seed the module's generator, every process alike


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range for the local ends of outgoing connections (and for binding port 0)."""
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def pool() -> range:
    """The ports handed out: below the ephemeral range, or above it when there is no room below."""
    low, high = ephemeral_range()
    if low - LOWEST >= 1000:
        return range(LOWEST, low)
    if 65535 - high >= 1000:
        return range(high + 1, 65536)
    return range(0)


def free_port(host: str = "127.0.0.1") -> int:
    """A port no server listens on and no other process is handed while this one lives (see the module)."""
    ports = pool()
    if not ports:  # an ephemeral range with no room outside it: the kernel's choice, unreserved
        with socket.socket() as s:
            s.bind((host, 0))
            return s.getsockname()[1]
    RESERVATIONS.mkdir(mode=0o700, exist_ok=True)
    with _lock:
        start = _random.randrange(len(ports))
        for i in range(len(ports)):
            port = ports[(start + i) % len(ports)]
            if port not in _held and (fd := _reserve(port)) is not None:
                if _bindable(host, port):
                    _held[port] = fd
                    return port
                os.close(fd)
    raise RuntimeError(f"no free port left in {ports.start}-{ports.stop - 1}")


def _reserve(port: int) -> int | None:
    fd = os.open(RESERVATIONS / str(port), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd
    except BlockingIOError:
        os.close(fd)
        return None


def _bindable(host: str, port: int) -> bool:
    """Nothing (not kta's: a service of the machine, or a connection still in TIME_WAIT) holds the port."""
    with socket.socket() as s:
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def wait_port(host: str, port: int, timeout: float = 10.0, proc: subprocess.Popen | None = None) -> None:
    """Block until ``host:port`` accepts TCP connections (or raise). With ``proc``: until the listener is
    that process's or one of its descendants' — another process listening there does not count, and ``proc``
    exiting (say, failing to bind) raises."""
    deadline = time.monotonic() + timeout
    stranger = False
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}"
                               + (" (another process listens there)" if stranger else ""))
        try:
            with socket.create_connection((host, port), timeout=0.2):
                pass
            if proc is None or listens(proc.pid, port):
                return
            stranger = True
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{'another process' if stranger else 'nothing'} listening on {host}:{port} "
                               f"after {timeout}s" + (f" (not process {proc.pid})" if stranger else "")) from None
        time.sleep(0.02)


def listens(pid: int, port: int) -> bool:
    """Whether process ``pid`` or a descendant holds the socket listening on TCP ``port`` (True where /proc
    cannot tell)."""
    if not os.path.exists("/proc/net/tcp"):
        return True
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            f = row.split()
            if f[3] == "0A" and int(f[1].rpartition(":")[2], 16) == port:  # 0A: LISTEN
                inodes.add(f"socket:[{f[9]}]")
    if not inodes:
        return False
    return any(_holds(p, inodes) for p in [pid, *_descendants(pid)])


def _holds(pid: int, links: set[str]) -> bool:
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") in links:
                return True
        except OSError:
            continue
    return False


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parent = int(Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, []))
    return found
