"""Connecting a user's Kite account: off to Kite's login page with the user's own api_key, back on
``/auth/kite/callback`` with a request token, exchanged (checksum with the user's api_secret) for an
access token that goes, encrypted, into the broker-session KV bucket the workers watch."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from urllib.parse import urlencode

from litestar import Controller, Request, Response, get
from litestar.exceptions import PermissionDeniedException

from gateway import users
from gateway.bodies import bad_field
from gateway.guards import user_id_of
from gateway.services import services_of
from gateway.trading import TradingError
from shared.ist import IST
from shared.kite import errors as kite_errors
from shared.kite.client import KiteClient
from shared.broker_sessions import put_session

log = logging.getLogger("kta.gateway.kite")


def next_expiry(now: datetime | None = None) -> int:
    """Kite access tokens die at 06:00 IST the next morning (epoch seconds)."""
    now = (now or datetime.now(IST)).astimezone(IST)
    six = now.replace(hour=6, minute=0, second=0, microsecond=0)
    return int((six if now < six else six + timedelta(days=1)).timestamp())


class KiteConnectController(Controller):
    path = "/auth/kite"
    tags = ["kite"]

    @get("/login")
    async def login(self, request: Request) -> Response:
        svc = services_of(request)
        user = users.get_user(svc.settings, user_id_of(request))
        if user is None:
            raise PermissionDeniedException(detail="your account was removed")
        url = f"{svc.settings.kite_login_url}?{urlencode({'v': 3, 'api_key': user.api_key})}"
        return Response(b"", status_code=302, headers={"Location": url})

    @get("/callback")
    async def callback(self, request: Request, request_token: str = "", status: str = "") -> Response:
        svc = services_of(request)
        uid = user_id_of(request)
        if status != "success":
            raise bad_field("status", f"Kite login did not succeed (status={status or 'missing'})")
        if not request_token or len(request_token) > 128:
            raise bad_field("request_token", "missing request_token in the Kite redirect")
        user = users.get_user(svc.settings, uid)
        if user is None or svc.bus is None:
            raise TradingError(503, "the gateway is not ready")
        client = KiteClient(user.api_key, root=svc.settings.kite_root, login_url=svc.settings.kite_login_url)
        try:
            session = await client.generate_session(request_token, users.api_secret(svc.settings, user))
        except kite_errors.KiteError as e:
            log.warning("Kite session exchange for %s failed: %s", uid, e.message)
            raise TradingError(400 if e.status < 500 else 502, f"Kite refused the login: {e.message}",
                               "request_token") from None
        finally:
            await client.aclose()
        if session.user_id != uid:
            raise PermissionDeniedException(
                detail=f"the Kite account you logged in with ({session.user_id}) is not yours ({uid})")
        egress = users.egress_of(svc.settings, user)  # where this user's orders must leave from
        await put_session(svc.bus, svc.trading.vault, uid, user.api_key, session.access_token,
                          login_time=session.login_time, expires_at=next_expiry(), egress_proxy=egress.proxy,
                          egress_local_address=egress.local_address)
        log.info("Kite connected for %s", uid)
        return Response(b"", status_code=303, headers={"Location": "/"})
