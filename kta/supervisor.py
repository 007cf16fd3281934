"""``kta up``: the whole stack on one machine as supervised child processes.

Each child gets its own process group (so a Ctrl-C reaches only the supervisor, which then stops
the children in order) and, on Linux, a parent-death signal, so even a SIGKILLed supervisor leaves
no orphan. A child that dies is restarted with exponential backoff; on SIGINT / SIGTERM the services
get SIGTERM first and the infrastructure (nats-server, kite_sim) once they have drained, SIGKILL
only for a child that outlives its grace period, all within 10 seconds.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("kta.supervisor")
PR_SET_PDEATHSIG = 1
STOP_GRACE = 7.0  # services (workers drain within 5 s, shared/service.py)
INFRA_GRACE = 2.0  # nats-server and kite_sim, once the services are down


def _child_setup() -> None:
    os.setpgrp()
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    ready: Callable[[], bool] | None = None  # health probe
    proc: subprocess.Popen | None = None
    restarts: int = 0
    started_at: float = 0.0
    log_path: str = ""
    history: list[int] = field(default_factory=list)  # pids, oldest first
    infrastructure: bool = False  # nats-server, the broker: stopped only after the services drained

    def start(self) -> None:
        out = open(self.log_path, "ab") if self.log_path else None
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=out or None, stderr=subprocess.STDOUT if out
                                     else None, preexec_fn=_child_setup, close_fds=True)
        self.started_at = time.monotonic()
        self.history.append(self.proc.pid)
        log.info("started %s (pid %d)", self.name, self.proc.pid, extra={"child": self.name, "pid": self.proc.pid})

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Supervisor:
    def __init__(self, children: list[Child], max_backoff: float = 30.0) -> None:
        self.children = children
        self.max_backoff = max_backoff
        self._stop = threading.Event()

    def wait_ready(self, child: Child, timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self._stop.is_set():
            if not child.alive:
                return False
            if child.ready is None or child.ready():
                return True
            time.sleep(0.1)
        return False

    def start_all(self) -> bool:
        """The infrastructure one at a time, each healthy before the next starts, then every service at
        once: they need only the infrastructure, so their imports and connects overlap."""
        infrastructure = [c for c in self.children if c.infrastructure]
        services = [c for c in self.children if not c.infrastructure]
        for child in infrastructure:
            child.start()
            if not self._healthy(child):
                return False
        for child in services:
            child.start()
        return all(self._healthy(child) for child in services)

    def _healthy(self, child: Child) -> bool:
        if not self.wait_ready(child):
            log.error("%s did not become healthy", child.name, extra={"child": child.name})
            return False
        log.info("%s healthy", child.name, extra={"child": child.name})
        return True

    def stop(self, *_: object) -> None:
        self._stop.set()

    def run(self, on_ready: Callable[[], None] | None = None) -> int:
        signal.signal(signal.SIGINT, self.stop)
        signal.signal(signal.SIGTERM, self.stop)
        try:
            if not self.start_all():
                return 1
            if on_ready:
                on_ready()
            self._watch()
            return 0
        finally:
            self.shutdown()

    def _watch(self) -> None:
        # Not stamina: restarts of long-lived children, each on its own backoff in one loop that stays
        # responsive to Ctrl-C, reset once a child has run 60 s; no call here is retried.
        due: dict[str, float] = {}
        while not self._stop.wait(0.2):
            for child in self.children:
                if child.alive:
                    if time.monotonic() - child.started_at > 60:
                        child.restarts = 0  # stable again: reset the backoff
                    continue
                now = time.monotonic()
                if child.name not in due:
                    code = child.proc.returncode if child.proc else None
                    delay = min(self.max_backoff, 0.5 * 2 ** child.restarts)
                    log.warning("%s exited with %s; restarting in %.1fs", child.name, code, delay,
                                extra={"child": child.name, "code": code})
                    due[child.name] = now + delay
                elif now >= due[child.name]:
                    del due[child.name]
                    child.restarts += 1
                    child.start()

    def shutdown(self) -> None:
        """Stop the services first and the infrastructure they drain through (nats-server, the
        broker) after them: SIGTERM, then SIGKILL for whatever outlives the grace period. A worker
        stopping must still reach NATS to hand its messages and partitions over."""
        deadline = time.monotonic() + STOP_GRACE
        services = [c for c in reversed(self.children) if not c.infrastructure]
        self._stop_group(services, deadline)
        self._stop_group([c for c in reversed(self.children) if c.infrastructure],
                         max(deadline, time.monotonic() + INFRA_GRACE))
        log.info("all children stopped")

    def _stop_group(self, children: list[Child], deadline: float) -> None:
        live = [c for c in children if c.alive]
        for c in live:
            try:
                os.killpg(c.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for c in live:
            try:
                c.proc.wait(max(0.1, deadline - time.monotonic()))
                log.info("%s stopped (exit %s)", c.name, c.proc.returncode, extra={"child": c.name})
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in time: killing", c.name, extra={"child": c.name})
                try:
                    os.killpg(c.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                c.proc.wait(2)


def python_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "kta", *args]
