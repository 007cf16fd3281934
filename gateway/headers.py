"""Security headers on every response the gateway sends (pages, API, static files, errors, streams).

The Content-Security-Policy allows scripts, styles and connections from the gateway itself only: the
templates carry no inline script, no event-handler attribute and no style attribute (htmx, its SSE
extension and the chart library are vendored under /static). Two inline styles are allowed by their
exact hash, nothing else: the chart library's attribution-logo <style> (``CHART_LOGO_STYLE``, checked
against the vendored file by the tests) and an empty ``style=""`` attribute, which htmx copies when it
settles a swapped element that a script had touched. Frames are refused both ways
(``frame-ancestors 'none'`` and X-Frame-Options), MIME sniffing is off, no URL leaks to another site
in a Referer, and in production (``KTA_ENV=prod``, served over HTTPS) browsers are told to use HTTPS
only (HSTS).
"""

from __future__ import annotations

from litestar.types import Message, Scope

from shared.config import Settings

CHART_LOGO_STYLE = "'sha256-3pRED1tOXas1FXFoPb9TGCjmYe9XQsmO9OV23khV2nY='"  # lightweight-charts 4.2.2
EMPTY_STYLE = "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"  # sha256 of ""
CSP = "; ".join((
    "default-src 'self'",
    "script-src 'self'",
    f"style-src 'self' {CHART_LOGO_STYLE}",
    f"style-src-attr 'unsafe-hashes' {EMPTY_STYLE}",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
))
HSTS = "max-age=31536000; includeSubDomains"
STATIC_CACHE = (b"cache-control", b"public, max-age=31536000, immutable")  # a versioned static URL (static_url)


def security_headers(settings: Settings) -> list[tuple[bytes, bytes]]:
    headers = {
        "content-security-policy": CSP,
        "x-frame-options": "DENY",
        "x-content-type-options": "nosniff",
        "referrer-policy": "same-origin",
        "cross-origin-opener-policy": "same-origin",
        "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=()",
    }
    if settings.env == "prod":
        headers["strict-transport-security"] = HSTS
    return [(k.encode(), v.encode()) for k, v in headers.items()]


def add_security_headers(settings: Settings):
    """A Litestar ``before_send`` hook: it sees every response start, including errors and 404s."""
    extra = security_headers(settings)

    async def hook(message: Message, scope: Scope) -> None:
        if message["type"] == "http.response.start":
            present = {k.lower() for k, _ in message.get("headers", [])}
            message["headers"] = [*message.get("headers", []), *((k, v) for k, v in extra if k not in present)]
            if message.get("status") == 200 and scope.get("path", "").startswith("/static/") \
                    and b"v=" in scope.get("query_string", b""):
                message["headers"].append(STATIC_CACHE)

    return hook
