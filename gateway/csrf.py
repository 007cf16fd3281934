"""CSRF: every state-changing request of a logged-in user carries the session's token, either in a
header (``X-CSRF-Token``; HTMX sends ``X-CSRFToken`` from ``hx-headers`` on <body>) or in the form
field ``csrf_token``. The token is per session, random, compared in constant time."""

from __future__ import annotations

from litestar.connection import ASGIConnection
from litestar.exceptions import PermissionDeniedException

from gateway.logins import Login
from shared.secrets import same

HEADERS = ("x-csrf-token", "x-csrftoken")
FIELD = "csrf_token"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


async def presented_token(connection: ASGIConnection) -> str:
    for name in HEADERS:
        value = connection.headers.get(name)
        if value:
            return value
    ctype = connection.headers.get("content-type", "")
    if ctype.startswith(_FORM_TYPES) and hasattr(connection, "form"):
        form = await connection.form()  # parsed once, cached for the handler
        value = form.get(FIELD)
        return value if isinstance(value, str) else ""
    return ""


async def require_csrf(connection: ASGIConnection, login: Login) -> None:
    if connection.scope.get("method") not in UNSAFE:
        return
    token = await presented_token(connection)
    if not token or not same(token, login.csrf_token):
        raise PermissionDeniedException(
            detail="CSRF token missing or wrong: send the X-CSRF-Token header (GET /auth/csrf) or the csrf_token field")
