"""The NATS credentials of one kta installation, kept in one directory (mode 0700):

* ``operator.nk``, ``system.nk``, ``account.nk`` — the seeds that sign (never leave this directory);
* ``server.conf`` — what nats-server includes to trust them (operator mode, memory resolver);
* ``<identity>.creds`` — one per service (``gateway``, ``ticker``, ``strategy``, ``execution``), the
  health probe (``ops``) and ``admin`` (full access: tests and the operator's own debugging);
* ``readers.json`` — the read-only keys issued to traders (``kta users nats-creds ID``);
* ``route.secret`` and ``cluster.conf`` — for a cluster: the password nats-servers route to each other with
  (the client JWTs do not cover routes) and what each server includes in its ``cluster`` block (the
  credentials it accepts and the routes it dials with them), so port 6222 refuses anyone else.

``AuthDir.ensure`` is idempotent: keys are made once, JWTs re-signed from ``shared/natsperms.py``
every time, so a change to the permission table takes effect at the next start. Seeds and creds are
never logged."""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterable
from pathlib import Path

from shared import natsjwt, natsperms, subjects
from shared.nkeys import KeyPair

IDENTITIES = (*natsperms.SERVICES, "ops", "cli", "admin")
ACCOUNT = "KTA"
ROUTE_USER = "route"
COMPOSE_ROUTES = ("nats-1:6222", "nats-2:6222", "nats-3:6222")  # deploy/compose.yaml's cluster


def _write_secret(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


class AuthDir:
    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    # ---- keys ------------------------------------------------------------------------------

    def _key(self, name: str, kind: str) -> KeyPair:
        p = self.path / f"{name}.nk"
        if p.exists():
            return KeyPair.from_seed(p.read_text())
        key = KeyPair.create(kind)
        _write_secret(p, key.seed + "\n")
        return key

    @property
    def operator(self) -> KeyPair:
        return self._key("operator", "operator")

    @property
    def account(self) -> KeyPair:
        return self._key("account", "account")

    @property
    def system(self) -> KeyPair:
        return self._key("system", "account")

    # ---- the directory ---------------------------------------------------------------------

    @classmethod
    def ensure(cls, path: str | os.PathLike) -> "AuthDir":
        auth = cls(path)
        auth.path.mkdir(parents=True, exist_ok=True)
        os.chmod(auth.path, 0o700)
        account = auth.account
        for identity in IDENTITIES:
            key = auth._identity_key(identity)
            jwt = natsjwt.user(identity, key, account, natsperms.permissions(identity))
            _write_secret(auth.creds_path(identity), natsjwt.creds(jwt, key))
        auth.write_server_conf()
        return auth

    def _identity_key(self, identity: str) -> KeyPair:
        p = self.creds_path(identity)
        if p.exists():
            try:
                return natsjwt.read_creds(p.read_text())[1]
            except ValueError:
                pass
        return KeyPair.create("user")

    def creds_path(self, identity: str) -> Path:
        return self.path / f"{identity}.creds"

    @property
    def server_conf(self) -> Path:
        return self.path / "server.conf"

    def _signed_once(self, name: str, sign) -> str:
        """A JWT made once and kept: nats-server refuses a reload that changes its operator."""
        p = self.path / f"{name}.jwt"
        if not p.exists():
            _write_secret(p, sign())
        return p.read_text().strip()

    def server_settings(self) -> dict:
        """What nats-server needs to trust this installation (all public: JWTs and keys' public halves)."""
        op, system, account = self.operator, self.system, self.account
        revoked = {r["public"]: r["revoked"] for rs in self._readers().values() for r in rs if r.get("revoked")}
        return {
            "operator": self._signed_once("operator", lambda: natsjwt.operator("kta", op, system.public)),
            "system_account": system.public,
            "resolver": "MEMORY",
            "max_control_line": 65536,  # a CONNECT carries the identity's JWT with its permissions
            "resolver_preload": {
                system.public: self._signed_once("system", lambda: natsjwt.account("SYS", system, op,
                                                                                  jetstream=False)),
                account.public: natsjwt.account(ACCOUNT, account, op, revocations=revoked)},
        }

    def write_server_conf(self) -> None:
        conf = self.server_settings()
        preload = "\n".join(f"  {k}: {json.dumps(v)}" for k, v in conf.pop("resolver_preload").items())
        lines = "\n".join(f"{k}: {json.dumps(v)}" for k, v in conf.items())
        _write_secret(self.server_conf, f"""# generated by kta (shared/natsauth.py): do not edit
{lines}
resolver_preload: {{
{preload}
}}
""")

    # ---- cluster routes ----------------------------------------------------------------------

    @property
    def route_password(self) -> str:
        """The password the cluster's servers route to each other with (made once; URL-safe)."""
        p = self.path / "route.secret"
        if not p.exists():
            _write_secret(p, secrets.token_urlsafe(32) + "\n")
        return p.read_text().strip()

    @property
    def cluster_conf(self) -> Path:
        return self.path / "cluster.conf"

    def route_settings(self) -> dict:
        """The NATS Helm chart's ``config.cluster.routeURLs`` (it adds them to the route URLs and the
        cluster's authorization block)."""
        return {"user": ROUTE_USER, "password": self.route_password}

    def write_cluster_conf(self, routes: Iterable[str]) -> Path:
        """``cluster.conf`` for servers routing to each other at ``routes`` (``host:port``): included in a
        ``cluster { }`` block, it accepts only routes that carry the password and dials with it."""
        pw = self.route_password
        urls = "\n".join(f'  "nats-route://{ROUTE_USER}:{pw}@{r}"' for r in routes)
        _write_secret(self.cluster_conf, f"""# generated by kta (shared/natsauth.py): do not edit
authorization {{
  user: "{ROUTE_USER}"
  password: "{pw}"
  timeout: 2
}}
routes: [
{urls}
]
""")
        return self.cluster_conf

    # ---- traders' read-only keys -----------------------------------------------------------

    def _readers(self) -> dict[str, list[dict]]:
        p = self.path / "readers.json"
        return json.loads(p.read_text()) if p.exists() else {}

    def issue_reader(self, user_id: str, days: int = 90) -> str:
        """A ``.creds`` text that may only subscribe to this user's subjects, valid ``days``."""
        user_id = subjects.user(user_id)
        key = KeyPair.create("user")
        expires = int(time.time()) + days * 86400
        jwt = natsjwt.user(f"reader-{user_id}", key, self.account, natsperms.reader_permissions(user_id),
                           expires=expires)
        readers = self._readers()
        readers.setdefault(user_id, []).append({"public": key.public, "issued": int(time.time()),
                                                "expires": expires})
        _write_secret(self.path / "readers.json", json.dumps(readers, indent=1))
        return natsjwt.creds(jwt, key)

    def revoke_readers(self, user_id: str) -> int:
        """Revoke every read-only key of a user (the server learns it at its next reload)."""
        readers = self._readers()
        now = int(time.time())
        count = 0
        for r in readers.get(subjects.user(user_id), []):
            if not r.get("revoked"):
                r["revoked"] = now
                count += 1
        _write_secret(self.path / "readers.json", json.dumps(readers, indent=1))
        self.write_server_conf()
        return count


def installation(settings) -> AuthDir:
    """This installation's credentials directory: ``KTA_NATS_CREDS`` when it is one (it holds the
    account key), else ``<data dir>/nats-auth`` (where ``kta up`` keeps it)."""
    given = Path(settings.nats_creds) if settings.nats_creds else None
    path = given if given is not None and (given / "account.nk").exists() else Path(settings.data_dir) / "nats-auth"
    if not (path / "account.nk").exists():
        raise FileNotFoundError(f"no NATS credentials directory at {path} (run kta up once, or set KTA_NATS_CREDS "
                                "to the directory made by python -m shared.natsauth)")
    return AuthDir(path)


def creds_for(settings) -> str:
    """``KTA_NATS_CREDS``, or the directory ``kta up`` keeps in the data dir (for a command run by hand)."""
    if settings.nats_creds:
        return settings.nats_creds
    local = Path(settings.data_dir) / "nats-auth"
    return str(local) if (local / "account.nk").exists() else ""


def reload_server(auth: AuthDir) -> bool:
    """Ask the nats-server started with this directory (``kta up``) to re-read it; False if none runs. The pid
    file outlives a server that was killed, and its number may be another process's by now: SIGHUP ends most
    processes, so only a nats-server running this directory's configuration is signalled."""
    import signal

    try:
        pid = int((auth.path / "nats.pid").read_text().strip())
        if Path("/proc").is_dir():
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if not (command and command[0].endswith(b"nats-server") and str(auth.server_conf).encode() in command):
                return False
        os.kill(pid, signal.SIGHUP)
        return True
    except (OSError, ValueError):
        return False


def reader_creds(settings, user_id: str, *, days: int, out: str, revoke: bool) -> str:
    """``kta users nats-creds``: write a user's read-only ``.creds`` (0600), or revoke them all."""
    auth = installation(settings)
    if revoke:
        n = auth.revoke_readers(user_id)
        reloaded = reload_server(auth)
        return (f"revoked {n} read-only NATS key(s) of {user_id}" +
                ("" if reloaded else f"; reload nats-server with {auth.server_conf} for it to take effect"))
    text = auth.issue_reader(user_id, days)
    if out == "-":
        return text
    target = Path(out or f"{user_id}.creds")
    _write_secret(target, text)
    return (f"wrote {target}: subscribe-only to kta.u.{user_id}.{{ticks.*, signals, orders, positions, risk, "
            f"outcomes, alerts}}, valid {days} days. Payload schemas: docs/nats-schemas.json; example: "
            "docs/examples/nats_subscriber.py")


def creds_file(creds: str, identity: str) -> Path | None:
    """The ``.creds`` file an identity uses: ``creds`` itself, or ``<creds>/<identity>.creds`` when
    it is a directory (``kta up`` and the tests point every process at one). ``None`` if unset."""
    if not creds:
        return None
    p = Path(creds)
    if p.is_dir():
        p = p / f"{identity}.creds"
    if not p.is_file():
        raise FileNotFoundError(f"NATS credentials {p} not found (KTA_NATS_CREDS)")
    return p


def main(argv: list[str] | None = None) -> None:
    """``python -m shared.natsauth DIR``: create (or refresh) an installation's credentials directory."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m shared.natsauth", description=main.__doc__)
    p.add_argument("dir")
    p.add_argument("--helm-values", help="also write values for the NATS Helm chart (config.merge, the cluster's "
                                         "route credentials) to this file")
    p.add_argument("--routes", default=",".join(COMPOSE_ROUTES),
                   help="the cluster's servers (host:port, comma-separated) for cluster.conf (default: compose's)")
    p.add_argument("--reader", metavar="USER_ID", help="print a read-only .creds for this user (deployments)")
    p.add_argument("--days", type=int, default=90)
    a = p.parse_args(argv)
    auth = AuthDir.ensure(a.dir)
    if a.reader:
        print(auth.issue_reader(a.reader.upper(), a.days), end="")
        return
    auth.write_cluster_conf(r.strip() for r in a.routes.split(",") if r.strip())
    if a.helm_values:
        _write_secret(Path(a.helm_values), json.dumps({"config": {"merge": auth.server_settings(), "cluster": {
            "routeURLs": auth.route_settings()}}}, indent=1))
    print(f"wrote {auth.server_conf} (include it in nats-server's configuration), {auth.cluster_conf} (include "
          f"it in the cluster block) and {', '.join(f'{i}.creds' for i in IDENTITIES)} in {auth.path}")


if __name__ == "__main__":
    main()
