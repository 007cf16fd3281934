"""Reading deploy/: the compose file with its ``${VAR:-default}`` interpolation, the kustomize
manifests, env files — shared by the manifest test and the topology test (which runs the services
with the environment compose gives them)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
K8S = DEPLOY / "k8s"
_VAR = re.compile(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}")


def interpolate(value: Any, environ: dict[str, str]) -> Any:
    """Compose's variable substitution: ``${X}``, ``${X:-default}``, ``${X:?error}``."""
    if isinstance(value, str):
        def sub(mt: re.Match) -> str:
            name, op, arg = mt.group(1), mt.group(2), mt.group(3) or ""
            if environ.get(name):
                return environ[name]
            if op == ":?":
                raise KeyError(f"{name}: {arg}")
            return arg if op == ":-" else ""
        return _VAR.sub(sub, value)
    if isinstance(value, list):
        return [interpolate(v, environ) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v, environ) for k, v in value.items()}
    return value


def compose(environ: dict[str, str] | None = None) -> dict:
    data = yaml.safe_load(COMPOSE.read_text())
    return interpolate(data, environ or {}) if environ is not None else data


def is_kta(service: dict) -> bool:
    return "kta" in str(service.get("image", ""))


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def k8s_documents() -> list[tuple[Path, dict]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [(path, d) for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def env_file(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out
