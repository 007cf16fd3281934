"""The fork server process of ``tests/simfork.py`` (``python -m tests.simfork_server <listener fd>``): on a program's
first request it imports what that program imports (``kite_sim``, or ``kta``'s command and workers) and freezes
it, then forks a child for every request that runs exactly what ``python -m <program> <flags>`` runs, and reports
each child's exit status on the child's own connection (``exit N``); ``signal N`` on that connection signals the
child while the server has not reaped it. It forks from its only thread, before any event loop, and the child
closes the listener, the selector and every connection before it runs. Closing its stdin stops it: it stops what
still runs (SIGTERM, then SIGKILL after 10 s), reaps it and exits."""

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
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# what a sim imports before it listens, beyond kite_sim.main's own imports (uvicorn's and anyio's chosen at run time)
PRELOAD = ("kite_sim.main", "uvicorn.lifespan.on", "uvicorn.protocols.http.h11_impl",
           "uvicorn.protocols.websockets.websockets_sansio_impl", "uvicorn.loops.auto", "anyio._backends._asyncio",
           "anyio.streams.tls", "encodings.idna")


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
