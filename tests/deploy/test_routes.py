"""The cluster's route port takes only the cluster: two nats-servers run deploy/nats/nats.conf with the
``cluster.conf`` that ``python -m shared.natsauth`` generates route to each other, while a server without
the route password, or a bare connection speaking the route protocol, is refused (client JWTs do not
cover routes: an open 6222 would let any process on the network join and read every subject)."""

from __future__ import annotations

import json
import socket
import subprocess

import httpx

from shared import natsauth, natsd
from shared.kite import tls
from tests.deploy.topology import nats_conf
from tests.helpers import eventually_blocking


def routes_of(monitor: int) -> int:
    return httpx.get(f"http://127.0.0.1:{monitor}/routez", timeout=5, verify=tls.context()).json()["num_routes"]


def route_connect(port: int, user: str = "", password: str = "") -> bytes:
    """Speak the route protocol to ``port``: INFO, CONNECT (with or without credentials), PING; the answer."""
    creds = {"user": user, "pass": password} if user else {}
    connect = {"verbose": False, "pedantic": False, "tls_required": False, "name": "intruder", "cluster": "kta",
               **creds}
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.recv(65536)  # INFO
        s.sendall(f"CONNECT {json.dumps(connect)}\r\nPING\r\n".encode())
        s.settimeout(5)
        return s.recv(65536)


def test_routes_need_the_generated_password(tmp_path):
    auth = natsauth.AuthDir.ensure(tmp_path / "nats-auth")
    routes = {f"nats-{i}": natsd.free_port() for i in (1, 2)}
    auth.write_cluster_conf(f"127.0.0.1:{port}" for port in routes.values())
    (tmp_path / "auth.conf").write_text(auth.server_conf.read_text())
    (tmp_path / "cluster.conf").write_text(auth.cluster_conf.read_text())
    monitors, procs = [], []
    try:
        for i in (1, 2):
            monitors.append(natsd.free_port())
            conf = tmp_path / f"nats-{i}.conf"
            conf.write_text(nats_conf(i, natsd.free_port(), monitors[-1], routes, tmp_path / f"store-{i}"))
            procs.append(subprocess.Popen([natsd.binary(), "--config", str(conf)], stdout=subprocess.DEVNULL,
                                          stderr=subprocess.STDOUT))
            natsd.wait_port("127.0.0.1", monitors[-1], proc=procs[-1])
        eventually_blocking(lambda: routes_of(monitors[0]) > 0 and routes_of(monitors[1]) > 0, 20,
                            "the two servers routing to each other with the password")
        port = routes["nats-1"]
        assert b"Authorization Violation" in route_connect(port)
        assert b"Authorization Violation" in route_connect(port, natsauth.ROUTE_USER, "guessed")
        assert b"PONG" in route_connect(port, natsauth.ROUTE_USER, auth.route_password)  # the password opens it
        text = auth.cluster_conf.read_text()
        assert auth.route_password in text and oct(auth.cluster_conf.stat().st_mode & 0o777) == "0o600"
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)


def test_helm_values_carry_the_route_credentials(tmp_path):
    natsauth.main([str(tmp_path / "a"), "--helm-values", str(tmp_path / "values.yaml"), "--routes", "n1:6222,n2:6222"])
    values = json.loads((tmp_path / "values.yaml").read_text())
    auth = natsauth.AuthDir(tmp_path / "a")
    assert values["config"]["cluster"]["routeURLs"] == {"user": "route", "password": auth.route_password}
    assert "operator" in values["config"]["merge"]
    conf = auth.cluster_conf.read_text()
    assert f"nats-route://route:{auth.route_password}@n1:6222" in conf and "@n2:6222" in conf
