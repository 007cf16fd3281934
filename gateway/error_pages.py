"""A browser that navigates to something that fails sees a page in words, never raw JSON: an HTTP error
(a bad query value, a refused Kite callback, an unknown path) or a worker's refusal becomes
``error_page.html`` with the status, what went wrong and a way back. API clients, HTMX requests and
the event streams keep their JSON answers (``kta.js`` shows an HTMX error in the red bar)."""

from __future__ import annotations

import logging

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException
from litestar.exceptions.responses import create_exception_response

from gateway.api.errors import trading_error_handler
from gateway.guards import wants_html
from gateway.templating import environment
from gateway.trading import TradingError

log = logging.getLogger("kta.gateway")
TITLES = {400: "That request was not understood", 401: "Please log in", 403: "Not allowed",
          404: "Nothing here", 405: "Not allowed here", 409: "Not possible right now",
          429: "Too many requests", 503: "A part of kta is not answering"}


def error_page(request: Request, status: int, detail: str) -> Response:
    login = request.scope.get("auth")
    html = environment().get_template("error_page.html").render(
        request=request, status=status, title=TITLES.get(status, "Something went wrong"), detail=detail,
        user_id=login.user_id if login else "", csrf=login.csrf_token if login else "")
    return Response(html, status_code=status, media_type=MediaType.HTML)


def log_server_error(request: Request, status: int, exc: Exception) -> None:
    """Every 5xx answer is logged with the traceback of what caused it (a 503 — a worker or the broker
    not answering — as a warning: it is an outage to see, not a bug)."""
    level = logging.WARNING if status == 503 else logging.ERROR
    log.log(level, "%s %s answered %d: %s", request.method, request.url.path, status, exc, exc_info=exc)


def http_error_handler(request: Request, exc: HTTPException) -> Response:
    if exc.status_code >= 500:
        log_server_error(request, exc.status_code, exc)
    if not wants_html(request):
        return create_exception_response(request, exc)
    detail = exc.detail
    extra = exc.extra if isinstance(exc.extra, list) else []
    named = "; ".join(f"{e.get('key') or e.get('source') or ''}: {e.get('message', '')}".strip(": ")
                      for e in extra if isinstance(e, dict))
    return error_page(request, exc.status_code, f"{detail} ({named})" if named else str(detail))


def trading_error_page_handler(request: Request, exc: TradingError) -> Response:
    if exc.status >= 500:
        log_server_error(request, exc.status, exc)
    if not wants_html(request):
        return trading_error_handler(request, exc)
    return error_page(request, exc.status, exc.message + (f" (field: {exc.field})" if exc.field else ""))


def internal_error_handler(request: Request, exc: Exception) -> Response:
    """Anything unexpected: logged with its traceback, answered as a 500 without one."""
    log.exception("%s %s failed", request.method, request.url.path, exc_info=exc)
    if not wants_html(request):
        return create_exception_response(request, exc)
    return error_page(request, 500, "kta hit an unexpected error; it has been logged. Try again, or go back.")
