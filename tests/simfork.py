"""The tests' kite_sims and kta commands, forked from one process that has already imported them.

Starting a sim with ``python -m kite_sim`` pays ~0.65 CPU-s of imports (litestar, uvicorn, numpy, the sim)
before it builds its app; the suite starts ~46. Each pytest process instead starts one fork server
(``tests/simfork_server.py``): it imports kite_sim, freezes what it imported, and forks a sim for every
request — the child then runs exactly what ``python -m kite_sim <flags>`` runs (``kite_sim.main.cli``),
with the caller's environment, working directory and log file, as a process of its own (SIGTERM stops it
gracefully, SIGKILL kills it). The caller holds a :class:`Forked`, which answers as ``subprocess.Popen``
does (pid, poll, wait, returncode, terminate, kill, send_signal); the server reports each child's exit
status on the child's own connection.

The same goes for ``python -m kta ...`` (a command, a worker: ~1 CPU-s of imports each): ``spawn(...,
program="kta")`` runs ``kta.cli.main``, :func:`run` is ``subprocess.run`` with its output captured and :func:`popen`
``subprocess.Popen`` with its output piped (``kta up``; what kta up starts is its own, exec'd as in production).

The server forks from its only thread, before any event loop, with no socket of its own open in the child:
the child closes the listener, its selector and every connection before it runs the sim.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class Forked:
    """A forked sim as ``subprocess.Popen`` presents a child: the exit status arrives on ``conn``."""

    def __init__(self, conn: socket.socket, pid: int, args: list[str], pending: bytes = b""):
        self.conn, self.pid, self.args = conn, pid, args
        self.returncode: int | None = None
        self.stdout: io.TextIOWrapper | None = None  # popen's: the child's output, as Popen(stdout=PIPE, text=True)
        self._pending = pending  # what arrived after the pid line (the exit line of a child that died at once)
        self._lock = threading.Lock()

    def _collect(self, timeout: float | None) -> int | None:
        with self._lock:
            if self.returncode is None and (self._pending or select.select([self.conn], [], [], timeout)[0]):
                line, _ = _read_line(self.conn, self._pending)
                self.returncode = int(line.split()[1]) if line.startswith("exit ") else 255  # 255: server gone
                self.conn.close()
            return self.returncode

    def poll(self) -> int | None:
        return self._collect(0)

    def wait(self, timeout: float | None = None) -> int:
        code = self._collect(timeout)
        if code is None:
            raise subprocess.TimeoutExpired(self.args, timeout)
        return code

    def send_signal(self, sig: int) -> None:
        """Signal the sim through its parent, the server, which signals only a child it has not reaped: a
        pid the server has reaped may be another process's by the time its exit line arrives here (this
        machine's 32768 pids go round within a suite), so ``os.kill(self.pid)`` could kill a stranger."""
        if self.poll() is None:
            with contextlib.suppress(OSError):  # the server has gone, and with it the child
                self.conn.sendall(f"signal {int(sig)}\n".encode())

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def _read_line(conn: socket.socket, data: bytes = b"") -> tuple[str, bytes]:
    """One line from ``conn`` (after ``data``, already received) and what came after it."""
    while b"\n" not in data:
        chunk = conn.recv(256)
        if not chunk:
            return data.decode().strip(), b""
        data += chunk
    line, _, rest = data.partition(b"\n")
    return line.decode().strip(), rest


class _Server:
    """A fork server: this process's own (started here, stopped by :meth:`stop`), or, with ``address``, the
    one an xdist controller started for its workers (see :func:`serve_workers`)."""

    def __init__(self, address: str | None = None) -> None:
        self.proc: subprocess.Popen | None = None
        if address is not None:
            self.address = address
            return
        self.address = f"\0kta-simfork-{os.getpid()}-{os.urandom(4).hex()}"  # abstract: no file to clean up
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.address)
        listener.listen(64)
        env = {k: v for k, v in os.environ.items() if not k.startswith("KTA_")}
        env["OPENBLAS_NUM_THREADS"] = "1"  # numpy's BLAS pool is a thread: nothing but the main one may exist at fork
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.simfork_server", str(listener.fileno())], cwd=ROOT,
                                     env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     pass_fds=(listener.fileno(),))
        listener.close()

    def spawn(self, flags: list[str], *, cwd: Path, env: dict[str, str], log: int, err: int | None = None,
              program: str = "kite_sim") -> Forked:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(self.address)
            request = json.dumps({"program": program, "flags": flags, "cwd": str(cwd), "env": env}).encode() + b"\n"
            socket.send_fds(conn, [request], [log] if err is None else [log, err])
            line, rest = _read_line(conn)
            if not line.startswith("pid "):
                raise RuntimeError(f"the sim fork server did not fork: {line or 'it has exited'}")
        except BaseException:
            conn.close()
            raise
        return Forked(conn, int(line.split()[1]), [sys.executable, "-m", program, *flags], rest)

    def alive(self) -> bool:
        return self.proc is None or self.proc.poll() is None  # a lent server lives as long as its owner

    def stop(self) -> None:
        if self.proc is not None:  # a lent server is its owner's to stop
            self.proc.stdin.close()  # the server stops what still runs, reaps it, and exits
            self.proc.wait()


_server: _Server | None = None
_server_lock = threading.Lock()
ADDRESS_VARIABLE = "TESTS_SIMFORK"  # not KTA_: settings refuse a KTA_ variable they do not know


def serve_workers() -> None:
    """In an xdist controller, before its workers start: one fork server for all of them (each would
    otherwise import kite_sim once more, ~1 CPU-s), its address in the environment they inherit."""
    global _server
    with _server_lock:
        _server = _Server()
        os.environ[ADDRESS_VARIABLE] = _server.address.lstrip("\0")


def spawn(flags: list[str], *, cwd: Path, env: dict[str, str], log: int, err: int | None = None,
          program: str = "kite_sim") -> Forked:
    """``python -m <program> <flags>`` (``kite_sim`` or ``kta``) in ``cwd`` with ``env``, stdout to the file
    descriptor ``log`` and stderr to ``err`` (else ``log`` too), forked from this process's fork server
    (started here the first time)."""
    global _server
    with _server_lock:
        if _server is None or not _server.alive():
            lent = os.environ.get(ADDRESS_VARIABLE)
            _server = _Server("\0" + lent) if lent else _Server()
        server = _server
    return server.spawn(flags, cwd=cwd, env=env, log=log, err=err, program=program)


def run(program: str, args: list[str], *, cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    """``subprocess.run([python, "-m", program, *args], capture_output=True, text=True, timeout=timeout)``,
    forked (the child is killed at the timeout, as subprocess.run kills it)."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        proc = spawn(args, cwd=cwd, env=env, log=out_w, err=err_w, program=program)
    finally:
        os.close(out_w)
        os.close(err_w)
    output: dict[int, list[bytes]] = {out_r: [], err_r: []}
    deadline = time.monotonic() + timeout
    try:
        reading = [out_r, err_r]
        while reading:
            ready = select.select(reading, [], [], max(0.0, deadline - time.monotonic()))[0]
            if not ready:
                proc.kill()
                proc.wait()
                raise subprocess.TimeoutExpired(proc.args, timeout)
            for fd in ready:
                if data := os.read(fd, 1 << 16):
                    output[fd].append(data)
                else:
                    reading.remove(fd)
        code = proc.wait(max(1.0, deadline - time.monotonic()))
    finally:
        os.close(out_r)
        os.close(err_r)
    text = {fd: b"".join(chunks).decode(errors="replace") for fd, chunks in output.items()}
    return subprocess.CompletedProcess(proc.args, code, text[out_r], text[err_r])


def popen(program: str, args: list[str], *, cwd: Path, env: dict[str, str]) -> Forked:
    """``subprocess.Popen([python, "-m", program, *args], stdout=PIPE, stderr=STDOUT, text=True)``, forked: the
    child's output (stdout and stderr) is read from ``proc.stdout``; the caller closes it."""
    out_r, out_w = os.pipe()
    try:
        proc = spawn(args, cwd=cwd, env=env, log=out_w, program=program)
    except BaseException:
        os.close(out_r)
        raise
    finally:
        os.close(out_w)
    proc.stdout = open(out_r, encoding="utf-8", errors="replace")
    return proc


def shutdown() -> None:
    """Stop this process's own fork server (and any sim it still runs), reaping it: its CPU and its sims'
    count as this process's children's. A server lent by the xdist controller is left to the controller."""
    global _server
    with _server_lock:
        server, _server = _server, None
    if server is not None:
        server.stop()
