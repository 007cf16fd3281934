"""Every answer an operation can give is declared in the OpenAPI document (``/schema``), not only its
200: the error statuses follow from what the handler is, plus the few an operation adds itself.

* not public → 401 (no session); a POST/PUT/PATCH/DELETE that is not public → 403 (CSRF token)
* talks to a worker or the broker (takes ``trading``) → 409 (not possible now) and 503 (not answering)
* a path parameter names a thing → 404 when the user has no such thing
* ``EXTRA``: redirects, throttles and the refusals a handler raises itself

The schemathesis test (tests/gateway/test_schema_fuzz.py) calls every operation with generated input
and fails on any status that is not declared here, and on any 5xx."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Litestar
from litestar.openapi.datastructures import ResponseSpec
from litestar.routes import HTTPRoute

from gateway.csrf import UNSAFE


class Problem(msgspec.Struct, omit_defaults=True):
    """An error answer: ``detail`` in words; ``field`` (or ``extra[].key``) names the bad input."""

    detail: str
    field: str | None = None
    error: str | None = None
    status_code: int | None = None
    extra: Any = None


DESCRIPTIONS = {
    302: "redirect to Kite's login page",
    303: "redirect: to the dashboard (already logged in, or back from Kite's login)",
    400: "a field is wrong; the answer names it (`field`, or `extra[].key`)",
    401: "no valid session (POST /auth/send-otp, then /auth/verify-otp), or a wrong or expired code",
    403: "the CSRF token is missing or wrong (X-CSRF-Token), or the request is not allowed",
    404: "the user has no such thing",
    409: "not possible now: Kite is not connected, a quota or the kill switch refuses, or it exists already",
    429: "too many: wait `Retry-After` seconds, or close another event stream",
    503: "a worker, the broker, NATS or the mail server is not answering; `detail` says which",
}
EXTRA: dict[tuple[str, str], set[int]] = {
    ("GET", "/login"): {303},
    ("POST", "/auth/send-otp"): {400, 403, 429, 503},
    ("POST", "/auth/verify-otp"): {400, 401, 403, 429},
    ("GET", "/auth/kite/login"): {302, 403},
    ("GET", "/auth/kite/callback"): {303, 403, 503},
    ("POST", "/api/strategies/remove"): {404},
    ("POST", "/api/backtests"): {400},
    ("POST", "/api/backtests/sweeps"): {400},
    ("POST", "/api/alerts/channels/{channel_id}/test"): {503},
    ("POST", "/api/alerts/test"): {503},
    ("PUT", "/api/settings/egress"): {400},
    ("GET", "/sse"): {429, 503},
    ("GET", "/api/stream"): {429, 503},
}
_TYPED_PARAM = re.compile(r"\{(\w+):\w+\}")


def _spec(status: int) -> ResponseSpec:
    redirect = 300 <= status < 400
    return ResponseSpec(data_container=None if redirect else Problem, description=DESCRIPTIONS[status],
                        generate_examples=False)


def statuses(method: str, path: str, public: bool, uses_trading: bool) -> set[int]:
    codes = set(EXTRA.get((method, path), ()))
    if not public:
        codes.add(401)
        if method in UNSAFE:
            codes.add(403)
    if uses_trading:
        codes |= {409, 503}
    if "{" in path:
        codes.add(404)
    return codes


def declare_error_responses(app: Litestar) -> None:
    """Add the declared error answers to every documented operation (before /schema is first built)."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        path = _TYPED_PARAM.sub(r"{\1}", route.path)
        for handler in route.route_handlers:
            if not handler.include_in_schema:
                continue
            uses_trading = "trading" in handler.parsed_fn_signature.parameters
            codes: set[int] = set()
            for method in handler.http_methods - {"OPTIONS", "HEAD"}:
                codes |= statuses(method, path, bool(handler.opt.get("public")), uses_trading)
            handler.responses = {**{c: _spec(c) for c in sorted(codes)}, **(handler.responses or {})}
