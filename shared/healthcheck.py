"""``python -m shared.healthcheck``: the container health check of whichever kta service runs here.

It finds the ``kta`` command line among the container's processes and probes that service:
the gateway's ``/healthz``; kite_sim's port; a worker's metrics endpoint (``kta_nats_connected``
must be 1 — this process, not another copy, is connected) or, without a metrics port, its NATS
health subject. Exit status 0 = healthy (what Docker's HEALTHCHECK reads)."""

from __future__ import annotations

import asyncio
import socket
import sys
import urllib.request
from pathlib import Path

from shared import subjects
from shared.config import ConfigError, Settings, load

TIMEOUT = 3.0


def kta_command(proc: Path = Path("/proc")) -> list[str]:
    """The arguments after ``kta`` of the kta process in this container (empty if none)."""
    for cmdline in sorted(proc.glob("[0-9]*/cmdline"), key=lambda p: int(p.parent.name)):
        try:
            args = [a.decode() for a in cmdline.read_bytes().split(b"\0") if a]
        except OSError:
            continue
        for i, arg in enumerate(args):
            if Path(arg).name == "kta" or (arg == "-m" and args[i + 1: i + 2] in (["kta"], ["kta.cli"])):
                rest = args[i + 1:] if Path(arg).name == "kta" else args[i + 2:]
                if rest and rest[0] in ("gateway", "worker", "sim", "up"):
                    return rest
    return []


def _http_ok(url: str, must_contain: str = "") -> bool:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as resp:  # noqa: S310 - loopback only
            return resp.status == 200 and (not must_contain or must_contain in resp.read().decode())
    except OSError:
        return False


def tcp_ok(port: int, host: str = "127.0.0.1", timeout: float = TIMEOUT) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def service_answers(nats_url: str, service: str, timeout: float = TIMEOUT, creds: str = "",
                    identity: str = "ops") -> bool:
    """True when ``service`` answers on its NATS health subject (asked as ``identity`` of ``creds``)."""
    import nats

    from shared.bus import auth_options

    async def ask() -> bool:
        nc = await nats.connect(nats_url.split(",")[0], connect_timeout=timeout, max_reconnect_attempts=0,
                                **auth_options(creds, identity))
        try:
            await nc.request(subjects.service_health(service), b"", timeout=timeout)
            return True
        except Exception:  # noqa: BLE001
            return False
        finally:
            await nc.close()

    try:
        return asyncio.run(ask())
    except Exception:  # noqa: BLE001
        return False


def check(args: list[str], settings: Settings) -> bool:
    if not args:
        return False
    if args[0] == "gateway":
        return _http_ok(f"http://127.0.0.1:{settings.gateway_port}/healthz")
    if args[0] == "sim":
        return tcp_ok(settings.sim_port)
    if args[0] == "worker" and len(args) > 1:
        if settings.metrics_port:
            return _http_ok(f"http://127.0.0.1:{settings.metrics_port}/metrics",
                            f'kta_nats_connected{{service="{args[1]}"}} 1.0')
        return service_answers(settings.nats_url, args[1], creds=settings.nats_creds, identity=args[1])
    return True


def main() -> None:
    try:
        settings = load()
    except ConfigError as e:
        print(f"unhealthy: {e}", file=sys.stderr)
        sys.exit(1)
    args = kta_command()
    healthy = check(args, settings)
    print(f"{' '.join(args) or 'no kta process'}: {'healthy' if healthy else 'unhealthy'}")
    sys.exit(0 if healthy else 1)


if __name__ == "__main__":
    main()
