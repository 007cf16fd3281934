"""What every request must be before a handler sees it.

* **Host.** DNS rebinding points a name the attacker controls at this gateway (at 127.0.0.1 in dev,
  where the demo user logs in with the code the page shows); the browser then sends that name as the
  Host and treats the answers as the attacker's own origin. The gateway serves only its own names: the
  host of ``KTA_PUBLIC_URL``, those in ``KTA_ALLOWED_HOSTS`` (comma-separated), ``localhost``, and any IP
  address literal (a page loaded from an address is that address's own origin, never another site's;
  Kubernetes probes and health checks call by address). Anything else is a 400 naming the setting.
* **Origin.** A login form may be posted only from the gateway's own origin; ``Origin: null`` (a
  sandboxed frame, a ``data:`` page) is refused.
* **Path.** A NUL character (``%00``) in the path is a 400 before any file lookup.
* **Nesting.** JSON nested deeper than the decoder's recursion limit is a 400 naming the body, not a 500.
* **Size.** A whole number too large for SQLite or the bus (64 bits) is a 400, wherever it reaches them
  (the API's bodies and parameters declare their own bounds; this is the net under them).
"""

from __future__ import annotations

import ipaddress
import logging
from urllib.parse import urlsplit

import msgspec
from litestar import MediaType, Request, Response
from litestar.enums import ScopeType
from litestar.exceptions import PermissionDeniedException
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from gateway.error_pages import internal_error_handler
from shared.config import Settings

log = logging.getLogger("kta.gateway.requests")
ANY_HOST = "*"


def allowed_hosts(settings: Settings) -> frozenset[str]:
    """Host names (lower case, no port) this gateway answers to; ``*`` in KTA_ALLOWED_HOSTS turns the
    check off (only behind a proxy that already validates Host)."""
    names = {"localhost"}
    for url in (settings.public_url, f"http://{settings.gateway_host}"):
        host = urlsplit(url).hostname if url else None
        if host and host not in ("0.0.0.0", "::"):
            names.add(host.lower())
    names |= {h.strip().lower() for h in settings.allowed_hosts.split(",") if h.strip()}
    return frozenset(names)


def _hostname(host: str) -> str:
    """``example.com:8000`` → ``example.com``; ``[::1]:8000`` → ``::1``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def host_allowed(host: str, allowed: frozenset[str]) -> bool:
    name = _hostname(host)
    if ANY_HOST in allowed or name in allowed:
        return True
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


async def _refuse(send: Send, detail: str) -> None:
    body = msgspec.json.encode({"status_code": 400, "detail": detail})
    await send({"type": "http.response.start", "status": 400,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class RequestChecks(ASGIMiddleware):
    """Refuses a request with a foreign Host or a NUL in its path, before any other middleware."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, hosts: frozenset[str]) -> None:
        self.hosts = hosts

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        host = _header(scope, b"host")
        if host is not None and not host_allowed(host, self.hosts):
            log.warning("refused a request for host %r (DNS rebinding, or a name missing from KTA_ALLOWED_HOSTS)",
                        host)
            await _refuse(send, f"Host {host!r} is not served here: add it to KTA_ALLOWED_HOSTS (or set KTA_PUBLIC_URL)")
            return
        if "\x00" in scope.get("path", ""):
            await _refuse(send, "path: contains a NUL character")
            return
        await next_app(scope, receive, send)


def same_origin(request: Request) -> None:
    """A login post from another origin, or from an opaque one (``Origin: null``), is refused.
    Browsers send Origin on every cross-site POST; a client that sends none is not a browser."""
    origin = request.headers.get("origin")
    if origin is None:
        return
    if origin == "null":
        raise PermissionDeniedException(detail="login refused from an opaque origin (Origin: null)")
    if origin.split("://", 1)[-1].lower() != request.headers.get("host", "").lower():
        raise PermissionDeniedException(detail="cross-site login request refused")


def nesting_error_handler(request: Request, exc: RecursionError) -> Response:
    """msgspec raises RecursionError for JSON nested past the interpreter's limit: the client's
    problem. Any other RecursionError is the gateway's and is logged like every 500."""
    if "deserializing" in str(exc):
        return Response({"status_code": 400, "detail": "body: JSON nested too deeply",
                         "extra": [{"key": "body", "message": "JSON nested too deeply"}]},
                        status_code=400, media_type=MediaType.JSON)
    return internal_error_handler(request, exc)


def overflow_error_handler(request: Request, exc: OverflowError) -> Response:
    log.warning("%s %s: a number out of range reached the store or the bus", request.method, request.url.path,
                exc_info=exc)
    return Response({"status_code": 400, "detail": "a whole number in the request is too large (at most 19 digits)"},
                    status_code=400, media_type=MediaType.JSON)
