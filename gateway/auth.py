"""Login by email OTP, logout, and the CSRF token for API clients.

``/login`` and ``/auth/send-otp`` / ``/auth/verify-otp`` are public (no session yet): they are
protected instead by the OTP store's throttles and lockouts and by a same-origin check
(``gateway.request_checks``)."""

from __future__ import annotations

import logging
import re
from typing import Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.exceptions import ValidationException
from litestar.response import Template

from gateway import users
from gateway.bodies import bad_field, read_body, wants_json
from gateway.guards import expired_cookie, session_cookie, user_id_of
from gateway.logins import COOKIE
from gateway.mailer import MailError, send_code
from gateway.otp import Throttled
from gateway.request_checks import same_origin
from gateway.services import services_of

log = logging.getLogger("kta.gateway.auth")
_OTP_RE = re.compile(r"^\d{6}$")


class SendOtp(msgspec.Struct, forbid_unknown_fields=False):
    zerodha_id: str
    email: str


class VerifyOtp(msgspec.Struct, forbid_unknown_fields=False):
    zerodha_id: str
    otp: str


def _ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _page(step: str, status: int = 200, **context: Any) -> Template:
    return Template(template_name="login.html", context={"step": step, **context}, status_code=status)


def _validated(zerodha_id: str, email: str | None = None) -> tuple[str, str]:
    try:
        uid = users.normalise_id(zerodha_id)
        mail = users.normalise_email(email) if email is not None else ""
    except users.UserError as e:
        raise bad_field(e.field, str(e)) from None
    return uid, mail


def _throttled(request: Request, e: Throttled, step: str, **context: Any) -> Response | Template:
    headers = {"Retry-After": str(e.retry_after)}
    if wants_json(request):
        return Response({"detail": str(e), "retry_after": e.retry_after}, status_code=429, headers=headers)
    page = _page(step, 429, error=str(e), **context)
    page.headers.update(headers)
    return page


class AuthController(Controller):
    opt = {"public": True}

    @get("/login")
    async def login_page(self, request: Request) -> Response | Template:
        if request.scope.get("auth") is not None:
            return Response(b"", status_code=303, headers={"Location": "/"})
        return _page("id")

    @post("/auth/send-otp", status_code=200)
    async def send_otp(self, request: Request) -> Response | Template:
        same_origin(request)
        try:
            body = await read_body(request, SendOtp)
            uid, mail = _validated(body.zerodha_id, body.email)
        except ValidationException as e:
            if wants_json(request):
                raise
            return _page("id", 400, error=e.detail)  # the browser form shows what to fix
        svc = services_of(request)
        ip_key, _ = svc.otps.guesser_keys(uid, _ip(request))
        try:
            svc.otps.check_lock(ip_key)  # a locked-out address gets no codes either
            svc.otps.throttle_request(uid, mail)  # the same for every pair: says nothing of which exist
        except Throttled as e:
            return _throttled(request, e, "otp", zerodha_id=uid)
        user = users.find_login(svc.settings, uid, mail)
        code = svc.otps.issue(uid) if user is not None else None
        if user is None:
            svc.otps.fail(ip_key)  # enumeration attempts count against the address
        elif svc.settings.smtp_host:
            try:
                await send_code(svc.settings, user.email, code)
            except MailError as e:
                log.warning("OTP email to user %s failed: %s", uid, e)
                return Response({"detail": str(e)}, status_code=503)
        dev_otp = code if (code and svc.settings.env == "dev") else None
        if dev_otp:
            print(f"[kta dev] login code for {uid}: {dev_otp}", flush=True)  # dev only, by design
        message = "If the Zerodha ID and email match an account, a 6-digit code is on its way."
        if wants_json(request):
            return Response({"sent": True, "zerodha_id": uid, "expires_in": svc.settings.otp_ttl_seconds,
                             "detail": message, **({"dev_otp": dev_otp} if dev_otp else {})})
        return _page("otp", zerodha_id=uid, message=message, dev_otp=dev_otp)

    @post("/auth/verify-otp", status_code=200)
    async def verify_otp(self, request: Request) -> Response | Template:
        same_origin(request)
        body = await read_body(request, VerifyOtp)
        uid, _ = _validated(body.zerodha_id)
        code = body.otp.strip()
        if not _OTP_RE.match(code):
            if not wants_json(request):
                return _page("otp", 400, zerodha_id=uid, error="otp: the code is 6 digits")
            raise bad_field("otp", "the code is 6 digits")
        svc = services_of(request)
        keys = svc.otps.guesser_keys(uid, _ip(request))  # wrong guesses lock out the guesser, not the account
        try:
            svc.otps.check_lock(*keys)
        except Throttled as e:
            return _throttled(request, e, "otp", zerodha_id=uid)
        user = users.get_user(svc.settings, uid)
        if not svc.otps.verify(uid, code) or user is None:
            svc.otps.fail(*keys)
            detail = "wrong or expired code: ask for a new one if it has expired"
            if wants_json(request):
                return Response({"detail": detail, "field": "otp"}, status_code=401)
            return _page("otp", 401, zerodha_id=uid, error=detail)
        svc.otps.clear(keys[1])
        svc.otps.forget_request(uid, user.email)  # signed in: asking again (another device) need not wait
        svc.logins.revoke_token(request.cookies.get(COOKIE))  # rotate: never keep a pre-login token
        token, login = svc.logins.create(uid)
        cookie = session_cookie(token, svc.settings.session_days * 86400, svc.secure_cookies)
        log.info("user %s logged in", uid)
        if svc.trading is not None:  # the desk opened ahead of the dashboard the login leads to
            svc.trading.bus.spawn(svc.trading.warm(uid), name=f"warm:{uid}")
        if wants_json(request):
            return Response({"user_id": uid, "csrf_token": login.csrf_token, "expires_at": int(login.expires_at)},
                            cookies=[cookie])
        headers = {"Location": "/"}
        if request.headers.get("hx-request"):
            headers["HX-Redirect"] = "/"
        return Response(b"", status_code=303, headers=headers, cookies=[cookie])


class SessionController(Controller):
    """Routes of a logged-in user (guarded app-wide; logout needs the CSRF token)."""

    @get("/auth/csrf")
    async def csrf(self, request: Request) -> dict[str, str]:
        return {"csrf_token": request.scope["auth"].csrf_token, "user_id": user_id_of(request)}

    @post("/auth/logout", status_code=200)
    async def logout(self, request: Request) -> Response:
        svc = services_of(request)
        uid = user_id_of(request)
        report: dict[str, Any] = {}
        if svc.trading is not None:
            report = await svc.trading.stop_live(uid)
        if svc.streams is not None:
            svc.streams.close_user(uid)
        svc.logins.revoke(request.scope["auth"].token_hash)
        log.info("user %s logged out", uid)
        cookie = expired_cookie(svc.secure_cookies)
        if wants_json(request):
            return Response({"logged_out": True, "stopped": report.get("stopped", [])}, cookies=[cookie])
        if request.headers.get("hx-request") == "true":
            # a 303 would be followed inside the XHR, so htmx would never see HX-Redirect
            return Response(b"", status_code=200, headers={"HX-Redirect": "/login"}, cookies=[cookie])
        return Response(b"", status_code=303, headers={"Location": "/login"}, cookies=[cookie])
