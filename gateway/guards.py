"""Who is asking: the session middleware resolves the ``kta_session`` cookie once per request, and the
app-wide guard refuses everything but handlers marked ``opt={"public": True}`` (login, static).

Without a session, pages redirect to /login (HTMX requests get ``HX-Redirect``), while ``/api/*``,
``/sse`` and every other machine route answer 401. With a session, unsafe methods need the CSRF token.
"""

from __future__ import annotations

from litestar import Request, Response
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie
from litestar.enums import ScopeType
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send
from litestar.utils.scope.state import ScopeState

from gateway.csrf import require_csrf
from gateway.logins import COOKIE, Login

PAGE_PREFIXES = ("/ui", "/login")
MACHINE_PREFIXES = ("/api/", "/schema", "/sse", "/healthz", "/readyz", "/metrics", "/static/")


class LoginRequired(Exception):
    """Raised by the guard; rendered as a redirect for pages and a 401 for everything else."""


def _cookie(scope: Scope, name: str) -> str | None:
    for key, value in scope.get("headers", []):
        if key == b"cookie":
            for part in value.decode("latin-1").split(";"):
                k, _, v = part.strip().partition("=")
                if k == name:
                    return v
    return None


class SessionMiddleware(ASGIMiddleware):
    scopes = (ScopeType.HTTP, ScopeType.WEBSOCKET)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        services = scope["litestar_app"].state.services
        token = _cookie(scope, COOKIE)
        login = services.logins.lookup(token) if token else None
        scope["user"] = login.user_id if login else None
        scope["auth"] = login
        if login is not None:
            ScopeState.from_scope(scope).csrf_token = login.csrf_token  # for templates' csrf_token()
        await next_app(scope, receive, send)


async def requires_login(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    if handler.opt.get("public"):
        return
    login: Login | None = connection.scope.get("auth")
    if login is None:
        raise LoginRequired()
    await require_csrf(connection, login)


def is_page(request: Request) -> bool:
    path = request.url.path
    return path == "/" or path.startswith(PAGE_PREFIXES)


def wants_html(request: Request) -> bool:
    """A browser navigation (not HTMX, not an API or stream path) that accepts HTML."""
    if request.headers.get("hx-request") or request.url.path.startswith(MACHINE_PREFIXES):
        return False
    return "text/html" in request.headers.get("accept", "")


def login_required_handler(request: Request, exc: LoginRequired) -> Response:
    if request.headers.get("hx-request"):
        return Response({"detail": "login required"}, status_code=401, headers={"HX-Redirect": "/login"})
    if request.method == "GET" and (is_page(request) or wants_html(request)):  # a browser: to the login page
        return Response(b"", status_code=303, headers={"Location": "/login"})
    return Response({"detail": "login required: POST /auth/send-otp then /auth/verify-otp"}, status_code=401)


def session_cookie(token: str, max_age: int, secure: bool) -> Cookie:
    return Cookie(key=COOKIE, value=token, max_age=max_age, path="/", httponly=True, samesite="lax", secure=secure)


def expired_cookie(secure: bool) -> Cookie:
    return Cookie(key=COOKIE, value="", max_age=0, path="/", httponly=True, samesite="lax", secure=secure)


def user_id_of(request: Request) -> str:
    login: Login | None = request.scope.get("auth")
    if login is None:
        raise LoginRequired()
    return login.user_id
