"""The tests' kite_sims and kta commands, forked from one process that has already imported them.

Starting a sim with ``python -m kite_sim`` pays ~0.65 CPU-s of imports (litestar, uvicorn, numpy, the sim)
before it builds its app; the suite starts ~46. Each pytest process instead starts this module once
(``python -m tests.simfork``): it imports kite_sim, freezes what it imported, and forks a sim for every
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
import gc
import io
import json
import logging
import os
import select
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# what a sim imports before it listens, beyond kite_sim.main's own imports (uvicorn's and anyio's chosen at run time)
PRELOAD = ("kite_sim.main", "uvicorn.lifespan.on", "uvicorn.protocols.http.h11_impl",
           "uvicorn.protocols.websockets.websockets_sansio_impl", "uvicorn.loops.auto", "anyio._backends._asyncio",
           "anyio.streams.tls", "encodings.idna")


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
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.simfork", str(listener.fileno())], cwd=ROOT,
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


# ---- the server process ------------------------------------------------------------------------------


def _run_child(program: str, flags: list[str], cwd: str, env: dict[str, str], fds: list[int]) -> None:
    """In the forked child: become ``python -m <program> <flags>`` and never return."""
    code = 1
    try:
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(fds[0], 1)
        os.dup2(fds[-1], 2)
        for fd in {*fds, devnull}:
            os.close(fd)
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        if env.get("PYTHONUNBUFFERED"):  # what -u would have made of stdout at the interpreter's start
            sys.stdout = io.TextIOWrapper(open(1, "wb", buffering=0, closefd=False), write_through=True)
        sys.argv = [str(ROOT / program / "__main__.py"), *flags]
        if program == "kta":
            from kta.cli import main as cli
        else:
            from kite_sim.main import cli

        try:
            cli(flags)
            code = 0
        except SystemExit as e:  # as the interpreter ends a SystemExit
            if e.code is None or isinstance(e.code, int):
                code = e.code or 0
            else:
                print(e.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001 - as the interpreter: the traceback to stderr, status 1
        traceback.print_exc()
    finally:
        logging.shutdown()  # as kta/__main__.py, before its os._exit
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # exiting anyway
                stream.flush()
        os._exit(code)


# what ``python -m kta worker <name>`` and kta's commands import before they run (~1 CPU-s a process)
KTA_PRELOAD = ("kta.cli", "gateway.users", "execution_worker.main", "ticker_worker.main")  # not the strategy worker:
# its pyarrow starts a thread at import (jemalloc's), and a fork server forks from its only thread


def _preload(program: str) -> None:
    if program == "kta":
        for module in KTA_PRELOAD:
            __import__(module)
        return
    _preload_sim()


def _preload_sim() -> None:
    """Import what a sim imports, then build one sim's app and drop it: Litestar imports its plugins (pydantic,
    attrs, ...) during its first build and fills its caches of type hints — 0.29 -> 0.10 CPU-s of a child's
    time to listen. The throwaway sim has a calendar of its own (the exchange calendar's warn-once flag stays
    unset for the children) and is never started (no task, no socket, no thread)."""
    for module in PRELOAD:
        __import__(module)
    from kite_sim.app import build_app
    from kite_sim.main import make_sim
    from kite_sim.options import Options

    build_app(make_sim(0, 1.0, True, "http://127.0.0.1/", options=Options(holidays=frozenset())))


def _serve(listener_fd: int) -> None:
    preloaded: set[str] = set()  # on a program's first request: a run whose tests start none pays nothing for it
    children: dict[int, socket.socket] = {}
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # ^C reaches the sims (same process group); the server stays to reap
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)
    listener = socket.socket(fileno=listener_fd)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    selector.register(sys.stdin, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)

    def reap(block: bool = False) -> None:
        while children:
            pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
            if pid == 0:
                return
            conn = children.pop(pid, None)
            if conn is not None:
                with contextlib.suppress(KeyError, ValueError):  # unregistered when its caller went
                    selector.unregister(conn)
                try:
                    conn.sendall(f"exit {os.waitstatus_to_exitcode(status)}\n".encode())
                except OSError:
                    pass  # the caller has gone
                conn.close()

    def fork(conn: socket.socket) -> None:
        data, fds, _, _ = socket.recv_fds(conn, 1 << 20, 2)
        while not data.endswith(b"\n"):
            more = conn.recv(1 << 20)
            if not more:
                raise EOFError("request cut off")
            data += more
        request = json.loads(data)
        if request["program"] not in ("kite_sim", "kta"):
            raise ValueError(f"no program {request['program']!r} here")
        if request["program"] not in preloaded:
            _preload(request["program"])
            gc.collect()
            gc.freeze()  # the children's collections leave the preloaded objects (shared pages) alone
            preloaded.add(request["program"])
        pid = os.fork()
        if pid == 0:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            selector.close()
            listener.close()
            for other in children.values():
                other.close()
            conn.close()
            os.close(wake_r)
            os.close(wake_w)
            _run_child(request["program"], request["flags"], request["cwd"], request["env"], fds)
        for fd in fds:
            os.close(fd)
        children[pid] = conn
        conn.sendall(f"pid {pid}\n".encode())
        selector.register(conn, selectors.EVENT_READ, pid)

    def signal_child(conn: socket.socket, pid: int) -> None:
        """The caller's ``signal N`` lines; a child still in ``children`` is not reaped, so ``pid`` is still it."""
        data = conn.recv(4096)
        if not data:  # the caller has gone: the child runs on until stopped or the server stops
            selector.unregister(conn)
            return
        for line in data.decode().splitlines():
            if line.startswith("signal ") and children.get(pid) is conn:
                os.kill(pid, int(line.split()[1]))

    try:
        while True:
            for key, _ in selector.select():
                if key.fileobj is listener:
                    conn = listener.accept()[0]
                    try:
                        fork(conn)
                    except Exception as e:  # noqa: BLE001 - a bad request fails that caller, not the server
                        try:
                            conn.sendall(f"error {type(e).__name__}: {e}\n".encode())
                        except OSError:
                            pass
                        conn.close()
                elif key.fileobj is sys.stdin:
                    if not os.read(sys.stdin.fileno(), 4096):
                        raise SystemExit
                elif key.data is not None:
                    try:
                        signal_child(key.fileobj, key.data)
                    except OSError:  # a caller gone mid-line; a child already dead (ESRCH: not reaped yet)
                        pass
                else:
                    os.read(wake_r, 4096)
                    reap()
    finally:  # the caller stopped the server (or is gone): stop what it left running, as its stop() would
        for pid in list(children):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while children and time.monotonic() < deadline:
            if select.select([wake_r], [], [], deadline - time.monotonic())[0]:
                os.read(wake_r, 4096)
            reap()
        for pid in list(children):
            os.kill(pid, signal.SIGKILL)
        reap(block=True)


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
