"""The compose topology as local processes: three clustered nats-servers from deploy/nats/nats.conf
and every kta service from deploy/compose.yaml — same commands, same environment — with hosts,
ports and /data adapted to loopback and temp dirs. No Docker."""

from __future__ import annotations

import functools
import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from shared import natsd
from shared.natsauth import AuthDir
from tests import simfork
from tests.deploy import manifests as mf

ROOT = mf.DEPLOY.parent


@dataclass
class Proc:
    name: str
    proc: subprocess.Popen | simfork.Forked
    log: Path
    port: int = 0

    def kill(self) -> None:
        """SIGKILL: no drain, no lease release — a crashed container."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()

    def wait_stopped(self) -> None:
        """After ``terminate``: its drain, SIGKILL past 15 s."""
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def tail(self, lines: int = 25) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- {self.name} ---\n" + "\n".join(text.splitlines()[-lines:])


def nats_conf(index: int, client: int, monitor: int, routes: dict[str, int], store: Path) -> str:
    """deploy/nats/nats.conf with its ports and hosts moved to loopback (node names kept); the routes
    are in the ``cluster.conf`` it includes (``AuthDir.write_cluster_conf`` with loopback addresses)."""
    text = (mf.DEPLOY / "nats" / "nats.conf").read_text()
    text = text.replace("$SERVER_NAME", f"nats-{index}")
    text = re.sub(r"^port: 4222$", f"host: 127.0.0.1\nport: {client}", text, flags=re.M)
    text = re.sub(r"^http_port: 8222$", f"http: 127.0.0.1:{monitor}", text, flags=re.M)
    text = re.sub(r"^(\s+)port: 6222$", rf"\1listen: 127.0.0.1:{routes[f'nats-{index}']}", text, flags=re.M)
    text = text.replace("/data/jetstream", str(store))
    assert "6222" not in text and "4222" not in text, text
    return text


@dataclass
class Topology:
    tmp: Path
    environ: dict[str, str]
    nats: list[Proc] = field(default_factory=list)
    services: list[Proc] = field(default_factory=list)
    client_ports: list[int] = field(default_factory=list)

    @property
    def nats_url(self) -> str:
        return ",".join(f"nats://127.0.0.1:{p}" for p in self.client_ports)

    @functools.cached_property
    def auth(self) -> AuthDir:
        """deploy/nats-auth as `python -m shared.natsauth` makes it, in the temp dir."""
        return AuthDir.ensure(self.tmp / "nats-auth")

    def secret_file(self, source: str) -> Path:
        """A compose secret's file (``./nats-auth/x.creds``) in the temp dir."""
        file = mf.compose(self.environ)["secrets"][source]["file"]
        return self.tmp / file.removeprefix("./")

    def start_nats(self) -> None:
        names = [f"nats-{i}" for i in (1, 2, 3)]
        shutil.copy(self.auth.server_conf, self.tmp / "auth.conf")  # compose mounts both beside nats.conf
        routes = {n: natsd.free_port() for n in names}
        shutil.copy(self.auth.write_cluster_conf(f"127.0.0.1:{port}" for port in routes.values()),
                    self.tmp / "cluster.conf")
        self.client_ports = [natsd.free_port() for _ in names]
        for i, name in enumerate(names, 1):
            conf = self.tmp / f"{name}.conf"
            conf.write_text(nats_conf(i, self.client_ports[i - 1], natsd.free_port(), routes, self.tmp / name))
            log = self.tmp / f"{name}.log"
            proc = subprocess.Popen([natsd.binary(), "--config", str(conf)], stdout=open(log, "wb"),
                                    stderr=subprocess.STDOUT)
            self.nats.append(Proc(name, proc, log, self.client_ports[i - 1]))
        for p in self.nats:
            natsd.wait_port("127.0.0.1", p.port, proc=p.proc)

    def start(self, service: str, *, name: str = "", overrides: dict[str, str] | None = None,
              data_dir: Path | None = None, port: int = 0) -> Proc:
        """Run a compose service as a process: its command and environment, /data → ``data_dir``."""
        svc = mf.compose(self.environ)["services"][service]
        data = data_dir or self.tmp / service
        data.mkdir(parents=True, exist_ok=True)
        env = {**mf.env_of(svc), "KTA_DATA_DIR": str(data), **(overrides or {})}
        for secret in svc.get("secrets", []):  # compose mounts each as /run/secrets/<target>
            env = {k: v.replace(f"/run/secrets/{secret['target']}", str(self.secret_file(secret["source"])))
                   for k, v in env.items()}
        if "KTA_NATS_URL" in env:
            env["KTA_NATS_URL"] = self.nats_url
        for key in ("KTA_GATEWAY_HOST", "KTA_SIM_HOST", "KTA_METRICS_HOST"):
            if key in env:
                env[key] = "127.0.0.1"
        command = [arg.replace("/data", str(data)) for arg in svc["command"]]
        name = name or service
        log = self.tmp / f"{name}.log"
        base = {k: v for k, v in os.environ.items() if not k.startswith("KTA_")}
        with open(log, "wb") as out:  # forked from the tests' preloaded server (tests/simfork.py)
            proc = simfork.spawn(command, cwd=ROOT, env={**base, **env, "PYTHONUNBUFFERED": "1"}, log=out.fileno(),
                                 program="kta")
        p = Proc(name, proc, log, port)
        self.services.append(p)
        return p

    def by_pid(self, pid: int) -> Proc:
        return next(p for p in self.services if p.proc.pid == pid)

    def logs(self) -> str:
        return "\n".join(p.tail() for p in [*self.services, *self.nats])

    def stop(self) -> None:
        """Every service at once, then the NATS nodes they drain through (as ``docker compose down`` stops
        a level of containers together): the drains overlap instead of following one another."""
        for group in (self.services, self.nats):
            for p in group:
                p.terminate()
            for p in group:
                p.wait_stopped()
