"""deploy/ parses, runs only real ``kta`` subcommands and sets only settings kta knows — read from
the files themselves, so a renamed setting or subcommand fails here before it fails in a cluster."""

from __future__ import annotations

import inspect
import re

import pytest
from cryptography.fernet import Fernet

from gateway.app import create_app
from kta import cli
from shared.config import ENV_PREFIX, FIELDS, load
from tests.deploy import manifests as mf

ENVIRON = {"KTA_SECRET_KEY": Fernet.generate_key().decode()}


def known(key: str) -> bool:
    return key.startswith(ENV_PREFIX) and key[len(ENV_PREFIX):].lower() in FIELDS


def assert_kta_command(args: list[str]) -> None:
    ns = cli.parser().parse_args(args)  # argparse exits on an unknown subcommand or flag
    assert ns.command in ("gateway", "worker", "sim"), args


def test_compose_services_run_kta_subcommands_with_known_settings():
    doc = mf.compose(ENVIRON)
    services = doc["services"]
    kta = {name: svc for name, svc in services.items() if mf.is_kta(svc)}
    assert {tuple(svc["command"][:2]) for svc in kta.values()} == {
        ("gateway",), ("worker", "ticker"), ("worker", "strategy"), ("worker", "execution"), ("sim", "--redirect-url")}
    for name, svc in kta.items():
        assert_kta_command(svc["command"])
        env = mf.env_of(svc)
        unknown = [k for k in env if not known(k)]
        assert not unknown, f"{name} sets unknown settings {unknown}"
        load(environ=env)  # every value validates (types, ranges)
        assert svc["restart"] == "unless-stopped" and svc["healthcheck"]["test"]
    nats_nodes = sum(str(s.get("image", "")).startswith("nats:") for s in services.values())
    for name in ("strategy", "execution", "ticker", "gateway"):
        svc = kta[name]
        assert svc.get("deploy", {}).get("replicas", 1) >= 1
        settings = load(environ=mf.env_of(svc))
        servers = settings.nats_url.split(",")
        assert all(url.startswith("nats://") for url in servers), settings.nats_url
        assert settings.nats_replicas <= min(len(servers), nats_nodes), f"{name}: more stream replicas than NATS nodes"


def test_compose_nats_cluster_profiles_and_volumes():
    doc = mf.compose(ENVIRON)
    services = doc["services"]
    nats = {n: s for n, s in services.items() if str(s.get("image", "")).startswith("nats:")}
    assert nats
    conf = (mf.DEPLOY / "nats" / "nats.conf").read_text()
    from shared.natsauth import COMPOSE_ROUTES

    # the routes (with their password) come from the generated cluster.conf, whose default names these nodes
    assert "jetstream" in conf and re.search(r"cluster \{[^}]*include \./cluster\.conf", conf)
    assert sorted(COMPOSE_ROUTES) == sorted(f"{n}:6222" for n in nats)
    for svc in nats.values():
        assert svc["healthcheck"] and svc["restart"] == "unless-stopped"
        assert any(v.startswith("./nats/nats.conf:") for v in svc["volumes"])
    assert services["kite-sim"]["profiles"] == ["paper"]  # live runs without the paper broker
    for name, svc in services.items():
        if mf.is_kta(svc) and name != "kite-sim":
            assert set(svc["profiles"]) == {"paper", "live"}
            assert svc["depends_on"]["kite-sim"]["required"] is False
        for volume in svc.get("volumes", []):
            source = volume.split(":", 1)[0]
            assert source.startswith("./") or source in doc["volumes"], f"{name}: undeclared volume {source}"
    with pytest.raises(KeyError, match="KTA_SECRET_KEY"):
        mf.compose({})  # a deployment without the shared Fernet key does not start
    live = mf.env_file(mf.DEPLOY / "live.env.example")
    assert all(known(k) for k in live) and live["KTA_KITE_ROOT"] == "https://api.kite.trade"


def test_k8s_manifests_parse_and_use_known_settings():
    docs = mf.k8s_documents()
    kinds = [(d["kind"], d["metadata"]["name"]) for _, d in docs if "metadata" in d]
    kustomization = next(d for p, d in docs if p.name == "kustomization.yaml")
    for resource in kustomization["resources"]:
        assert (mf.K8S / resource).exists(), resource
    deployments = {name for kind, name in kinds if kind == "Deployment"}
    assert deployments == {"gateway", "ticker", "strategy", "execution"}
    assert ("Service", "gateway") in kinds and ("Ingress", "gateway") in kinds
    settings_keys = set()
    for _, d in docs:
        if d.get("kind") == "ConfigMap":
            settings_keys |= set(d["data"])
        if d.get("kind") == "Deployment":
            for c in d["spec"]["template"]["spec"]["containers"]:
                assert_kta_command(c["args"])
                settings_keys |= {e["name"] for e in c.get("env", [])}
                refs = {next(iter(r.values()))["name"] for r in c["envFrom"]}
                assert refs == {"kta-settings", "kta-secrets"}
    settings_keys |= set(mf.env_file(mf.K8S / "secrets.env.example"))
    assert [k for k in settings_keys if not known(k)] == []
    config = next(d for _, d in docs if d.get("kind") == "ConfigMap")
    settings = load(environ={**config["data"], **ENVIRON})
    import yaml

    cluster = yaml.safe_load((mf.K8S / "nats-values.yaml").read_text())["config"]["cluster"]
    assert settings.nats_replicas <= (cluster["replicas"] if cluster.get("enabled") else 1)
    assert kustomization["secretGenerator"][0]["envs"] == ["secrets.env"]


def test_ingress_is_sse_friendly_and_nats_values_cluster():
    ingress = next(d for _, d in mf.k8s_documents() if d.get("kind") == "Ingress")
    notes = ingress["metadata"]["annotations"]
    assert notes["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    heartbeat = inspect.signature(create_app).parameters["heartbeat"].default
    assert int(notes["nginx.ingress.kubernetes.io/proxy-read-timeout"]) > heartbeat  # an idle stream stays open
    import yaml

    values = yaml.safe_load((mf.K8S / "nats-values.yaml").read_text())
    assert values["config"]["cluster"]["enabled"]
    assert values["config"]["jetstream"]["enabled"] and values["config"]["jetstream"]["fileStore"]["pvc"]["enabled"]


def test_dockerfile_is_multi_stage_non_root_with_healthcheck():
    text = (mf.DEPLOY / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    assert len(stages) >= 2 and all(s.startswith("python:3.11-slim") for s in stages)
    build, final = stages[0], stages[-1]
    assert "pip wheel" in build and "build-essential" in build
    assert "build-essential" not in final and "apt-get install" not in final
    assert re.search(r"^USER kta$", final, re.M) and "HEALTHCHECK" in final
    assert 'ENTRYPOINT ["kta-entrypoint"]' in final
    entry = (mf.DEPLOY / "entrypoint.sh").read_text()
    assert entry.rstrip().endswith('exec kta "$@"')
    ignored = (mf.DEPLOY.parent / ".dockerignore").read_text().split()
    assert ".git" in ignored and "tests" in ignored
    for src in re.findall(r"^COPY (\S+) ", build, re.M):
        assert src not in ignored and (mf.DEPLOY.parent / src).exists(), src


def test_healthcheck_finds_the_kta_service_of_the_container(tmp_path):
    from shared import healthcheck

    for pid, argv in ((1, ["/usr/bin/tini", "--", "kta-entrypoint", "worker", "execution"]),
                      (7, ["/usr/local/bin/python", "/usr/local/bin/kta", "worker", "execution"]),
                      (9, ["python", "-m", "shared.healthcheck"])):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    assert healthcheck.kta_command(tmp_path) == ["worker", "execution"]
    assert healthcheck.check([], load(environ={})) is False


def test_every_nats_client_in_compose_has_its_own_identity_and_the_servers_require_one():
    """The cluster includes the generated auth.conf; each kta service gets exactly its own .creds
    (strategy and execution copies share their kind's), named after a role of shared/natsperms.py."""
    from shared import natsauth

    doc = mf.compose(ENVIRON)
    assert "include ./auth.conf" in (mf.DEPLOY / "nats" / "nats.conf").read_text()
    for name, svc in doc["services"].items():
        if str(svc.get("image", "")).startswith("nats:"):
            assert any(v.startswith("./nats-auth/server.conf:/etc/nats/auth.conf") for v in svc["volumes"])
            assert any(v.startswith("./nats-auth/cluster.conf:/etc/nats/cluster.conf") for v in svc["volumes"])
        elif mf.is_kta(svc) and name != "kite-sim":
            env = mf.env_of(svc)
            assert env["KTA_NATS_CREDS"] == "/run/secrets/nats.creds", name
            (secret,) = svc["secrets"]
            assert secret == {"source": f"nats-{name}", "target": "nats.creds"}
            assert doc["secrets"][secret["source"]]["file"] == f"./nats-auth/{name}.creds"
            assert name in natsauth.IDENTITIES

