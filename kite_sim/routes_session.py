"""The login flow (``/connect/login`` form → redirect with ``request_token``), ``/session/token`` with the
sha256 checksum, logout, and the user's profile and margins."""

from __future__ import annotations

import html
import logging
from urllib.parse import urlencode

from litestar import Controller, MediaType, Request, Response, delete, get, post
from litestar.di import Provide

from kite_sim import portfolio
from kite_sim.envelope import error_response, form, ok
from kite_sim.errors import KiteError
from kite_sim.kite_api import KiteController, provide_sim
from kite_sim.sim import Sim

log = logging.getLogger("kite_sim.session")

LOGIN_PAGE = """<!doctype html><html><head><title>Kite (sim) login</title>
<meta name="viewport" content="width=device-width,initial-scale=1"><link rel="icon" href="data:,"></head>
<body style="font-family:sans-serif;max-width:360px;margin:60px auto">
<h2>Login to Kite <small>(kite_sim)</small></h2>
<form method="post" action="/connect/login">
<input type="hidden" name="api_key" value="{api_key}">
<input type="hidden" name="redirect_params" value="{redirect_params}">
<p><label>User ID <input name="user_id" id="userid" autocomplete="username"></label></p>
<p><label>Password <input name="password" id="password" type="password"></label></p>
<p><button type="submit" id="login">Login</button></p></form></body></html>"""

AUTHORISE_PAGE = """<!doctype html><html><head><title>CDSL authorisation (kite_sim)</title>
<meta name="viewport" content="width=device-width,initial-scale=1"><link rel="icon" href="data:,"></head>
<body style="font-family:sans-serif;max-width:420px;margin:60px auto">
<h2>Authorise holdings <small>(kite_sim's CDSL)</small></h2><p>{what}</p>
<form method="post"><p><label>TPIN <input name="tpin" id="tpin" inputmode="numeric"></label></p>
<p><button type="submit" id="authorise">Authorise</button></p></form></body></html>"""

def unknown_request() -> Response:
    return Response("<h1>Unknown or expired authorisation request</h1>", media_type=MediaType.HTML, status_code=404)

EXCHANGES = ["NSE", "NFO", "BFO", "BSE", "MF"]
PRODUCTS = ["CNC", "NRML", "MIS", "BO", "CO"]
ORDER_TYPES = ["MARKET", "LIMIT", "SL", "SL-M"]


def profile(user, edis: bool = False) -> dict:
    """``meta.demat_consent`` is empty for an account without DDPI/POA (delivery sells need the day's eDIS)."""
    return {"user_id": user.user_id, "user_type": "individual", "email": user.email, "user_name": user.name,
            "user_shortname": user.name.split()[0], "broker": "ZERODHA", "exchanges": EXCHANGES,
            "products": PRODUCTS, "order_types": ORDER_TYPES, "avatar_url": None,
            "meta": {"demat_consent": "" if edis else "consent"}}


class SessionController(Controller):
    """The public half: the login form, the request-token exchange and logout."""

    path = "/"
    dependencies = {"sim": Provide(provide_sim, sync_to_thread=False)}

    @get("/connect/login", media_type=MediaType.HTML)
    async def login_page(self, sim: Sim, api_key: str = "", v: str = "3", redirect_params: str = "") -> Response:
        if api_key not in sim.accounts.apps:
            return Response("<h1>Invalid api_key</h1>", media_type=MediaType.HTML, status_code=400)
        page = LOGIN_PAGE.format(api_key=html.escape(api_key), redirect_params=html.escape(redirect_params))
        return Response(page, media_type=MediaType.HTML)

    @post("/connect/login", status_code=302)
    async def login_submit(self, request: Request, sim: Sim) -> Response:
        f = await form(request)
        api_key = f.get("api_key") or ""
        token = sim.accounts.login(api_key, f.get("user_id") or "", f.get("password") or "")
        if token is None:
            log.info("login refused for %r (app %r)", f.get("user_id"), api_key)
            return Response("<h1>Invalid user id or password</h1>", media_type=MediaType.HTML, status_code=403)
        log.info("login %s (app %s): request token issued", (f.get("user_id") or "").upper(), api_key)
        params = {"request_token": token, "action": "login", "type": "login", "status": "success"}
        url = sim.accounts.apps[api_key].redirect_url
        extra = f.get("redirect_params") or ""
        location = f"{url}{'&' if '?' in url else '?'}{urlencode(params)}" + (f"&{extra}" if extra else "")
        return Response(b"", status_code=302, headers={"Location": location})

    @post("/session/token", status_code=200)
    async def session_token(self, request: Request, sim: Sim) -> Response:
        f = await form(request)
        result = sim.accounts.exchange(f.get("api_key") or "", f.get("request_token") or "", f.get("checksum") or "")
        if isinstance(result, str):
            log.info("session refused (app %r): %s", f.get("api_key"), result)
            return error_response(KiteError(result, "TokenException", 403))
        token, info = result
        log.info("session opened for %s (app %s)", info.user_id, info.api_key)
        sim.changed()
        user = sim.accounts.users[info.user_id]
        return ok({**profile(user, sim.broker.account(info.user_id).depository.edis), "api_key": info.api_key, "access_token": token,
                   "public_token": info.public_token, "enctoken": "", "refresh_token": "", "silo": "",
                   "login_time": info.login_time})

    @delete("/session/token", status_code=200)
    async def session_logout(self, sim: Sim, api_key: str = "", access_token: str = "") -> Response:
        if not sim.accounts.invalidate(api_key, access_token):
            return error_response(KiteError("Invalid session.", "TokenException", 403))
        log.info("session closed (app %s)", api_key)
        sim.changed()
        return ok(True)


class DepositoryController(Controller):
    """The depository's TPIN page a user is sent to after ``POST /portfolio/holdings/authorise``."""

    path = "/connect/portfolio/authorise/holdings/{api_key:str}/{request_id:str}"
    dependencies = {"sim": Provide(provide_sim, sync_to_thread=False)}

    @get(media_type=MediaType.HTML)
    async def page(self, sim: Sim, api_key: str, request_id: str) -> Response:
        found = _authorisation(sim, api_key, request_id)
        if found is None:
            return unknown_request()
        acc, wanted = found
        names = {t: sim.market.universe.by_token[t].tradingsymbol for t in acc.holdings}
        what = "All your holdings." if wanted is None else ", ".join(
            f"{html.escape(names.get(t, str(t)))} × {q}" for t, q in wanted.items())
        return Response(AUTHORISE_PAGE.format(what=what), media_type=MediaType.HTML)

    @post(media_type=MediaType.HTML, status_code=200)
    async def authorise(self, sim: Sim, api_key: str, request_id: str) -> Response:
        found = _authorisation(sim, api_key, request_id)
        if found is None:
            return unknown_request()
        acc, _ = found
        grant = acc.depository.authorise(request_id, acc.holdings)
        log.info("holdings authorised at the depository: %d instruments", len(grant), extra={"user_id": acc.user_id})
        sim.changed()
        return Response("<h1>Authorised</h1><p>You can close this page and sell.</p>", media_type=MediaType.HTML)


def _authorisation(sim: Sim, api_key: str, request_id: str):
    """(account, wanted) of an open authorisation request of today, or None."""
    if api_key not in sim.accounts.apps:
        return None
    today = sim.market.clock.today().isoformat()
    for acc in sim.broker.accounts.values():
        acc.depository.roll(today)
        if request_id in acc.depository.requests:
            return acc, acc.depository.requests[request_id]
    return None


class UserController(KiteController):
    path = "/user"

    @get("/profile")
    async def user_profile(self, sim: Sim, user_id: str) -> Response:
        return ok(profile(sim.accounts.users[user_id], sim.broker.account(user_id).depository.edis))

    @get("/margins")
    async def user_margins(self, sim: Sim, user_id: str) -> Response:
        return ok(portfolio.margins(sim.market, sim.broker.account(user_id)))

    @get("/margins/{segment:str}")
    async def user_margins_segment(self, sim: Sim, user_id: str, segment: str) -> Response:
        if segment not in ("equity", "commodity"):
            raise KiteError("Invalid segment.")
        return ok(portfolio.margins(sim.market, sim.broker.account(user_id))[segment])
