"""Login by OTP, sessions, CSRF and the guard on every route, against the gateway under uvicorn."""

from __future__ import annotations

import re
from contextlib import aclosing

import httpx
import pytest
from litestar.routes import HTTPRoute

from gateway.otp import RESEND_SECONDS
from tests.gateway.conftest import login

pytestmark = pytest.mark.slow(seconds=18)

PUBLIC = {"/login", "/auth/send-otp", "/auth/verify-otp"}
OPS_PROBES = {"/healthz", "/readyz", "/metrics"}  # gateway/ops.py: for orchestrators, no user data


def _protected_routes(app) -> list[tuple[str, str]]:
    out = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or route.path.startswith("/static"):
            continue
        path = re.sub(r"\{[^}]+\}", "x", re.sub(r"\{[^}:]+:int\}", "1", route.path))
        for handler in route.route_handlers:
            for method in sorted(handler.http_methods - {"OPTIONS", "HEAD"}):
                if handler.opt.get("public"):
                    assert path in PUBLIC | OPS_PROBES, f"{path} is marked public"
                else:
                    out.append((method, path))
    return out


async def test_every_route_refuses_without_a_session(gateway):
    routes = _protected_routes(gateway.app)
    assert ("GET", "/sse") in routes and ("GET", "/api/status") in routes and ("GET", "/schema") in routes
    async with gateway.client() as c:
        for method, path in routes:
            r = await c.request(method, path, json={} if method == "POST" else None)
            if path == "/" or path.startswith("/ui"):
                assert r.status_code in (303, 401), (method, path, r.status_code)
                assert r.status_code == 401 or r.headers["location"] == "/login"
            else:
                assert r.status_code == 401, (method, path, r.status_code, r.text)
        assert (await c.get("/login")).status_code == 200
        assert (await c.get("/static/vendor/htmx.min.js")).status_code == 200


async def test_otp_login_sets_a_hardened_cookie_and_is_single_use(gateway):
    async with gateway.client() as c:
        r = await c.post("/auth/send-otp", json={"zerodha_id": "demo01", "email": "DEMO@kta.local"})
        assert r.status_code == 200 and re.fullmatch(r"\d{6}", r.json()["dev_otp"])
        code = r.json()["dev_otp"]
        r = await c.post("/auth/verify-otp", json={"zerodha_id": "DEMO01", "otp": code})
        assert r.status_code == 200
        cookie = r.headers["set-cookie"]
        assert "kta_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
        assert (await c.get("/api/status")).status_code in (200, 503)
    async with gateway.client() as c2:
        r = await c2.post("/auth/verify-otp", json={"zerodha_id": "DEMO01", "otp": code})
        assert r.status_code == 401  # used once already


async def test_otp_expires(gateway):
    otps = gateway.services.otps
    async with gateway.client() as c:
        r = await c.post("/auth/send-otp", json={"zerodha_id": "DEMO01", "email": "demo@kta.local"})
        code = r.json()["dev_otp"]
        real = otps.clock
        otps.clock = lambda: real() + gateway.settings.otp_ttl_seconds + 1
        try:
            r = await c.post("/auth/verify-otp", json={"zerodha_id": "DEMO01", "otp": code})
        finally:
            otps.clock = real
        assert r.status_code == 401


async def test_resend_is_throttled(gateway):
    async with gateway.client() as c:
        body = {"zerodha_id": "DEMO01", "email": "demo@kta.local"}
        assert (await c.post("/auth/send-otp", json=body)).status_code == 200
        r = await c.post("/auth/send-otp", json=body)
        assert r.status_code == 429 and 0 < int(r.headers["retry-after"]) <= RESEND_SECONDS + 1


async def test_the_resend_throttle_does_not_tell_which_pairs_exist(gateway):
    """A real pair, a real ID with another email, an unknown ID: the same answers, twice."""
    answers = []
    async with gateway.client() as c:
        for body in ({"zerodha_id": "DEMO01", "email": "demo@kta.local"},
                     {"zerodha_id": "DEMO02", "email": "someone@else.com"},
                     {"zerodha_id": "NOSUCH", "email": "nobody@kta.local"}):
            first = await c.post("/auth/send-otp", json=body)
            again = await c.post("/auth/send-otp", json=body)
            answers.append((first.status_code, first.json()["detail"], again.status_code, again.json()["detail"]))
    assert answers[0] == answers[1] == answers[2], answers
    assert answers[0][0] == 200 and answers[0][2] == 429


def from_address(gateway, address: str) -> httpx.AsyncClient:
    """A client connecting from another loopback address: another machine, as the gateway sees it."""
    return gateway.client(transport=httpx.AsyncHTTPTransport(local_address=address))


async def wrong_guesses(client, zerodha_id: str, n: int) -> list[int]:
    return [(await client.post("/auth/verify-otp", json={"zerodha_id": zerodha_id, "otp": "000000"})).status_code
            for _ in range(n)]


async def test_a_guesser_is_locked_out_not_the_account(gateway):
    async with from_address(gateway, "127.0.0.2") as guesser, gateway.client() as owner:
        assert await wrong_guesses(guesser, "DEMO01", 6) == [401] * 5 + [429]  # no code issued: still counted
        r = await owner.post("/auth/send-otp", json={"zerodha_id": "DEMO01", "email": "demo@kta.local"})
        code = r.json()["dev_otp"]
        assert (await guesser.post("/auth/verify-otp", json={"zerodha_id": "DEMO01", "otp": code})).status_code == 429
        r = await owner.post("/auth/verify-otp", json={"zerodha_id": "DEMO01", "otp": code})
        assert r.status_code == 200  # the account's owner, from their own address, is not locked out
    async with from_address(gateway, "127.0.0.2") as guesser:
        assert await wrong_guesses(guesser, "DEMO02", 1) == [401]  # the lock is per ID and address


async def test_a_code_dies_after_five_wrong_guesses_and_an_address_after_twenty(gateway):
    otps = gateway.services.otps
    async with gateway.client() as owner, from_address(gateway, "127.0.0.3") as guesser:
        r = await owner.post("/auth/send-otp", json={"zerodha_id": "DEMO01", "email": "demo@kta.local"})
        code = r.json()["dev_otp"]
        await wrong_guesses(guesser, "DEMO01", 5)  # the code survives five wrong guesses, then dies
        assert (await owner.post("/auth/verify-otp", json={"zerodha_id": "DEMO01", "otp": code})).status_code == 401
        real = otps.clock
        otps.clock = lambda: real() + RESEND_SECONDS + 1  # the owner asks again after the resend wait
        try:
            r = await owner.post("/auth/send-otp", json={"zerodha_id": "DEMO01", "email": "demo@kta.local"})
            r = await owner.post("/auth/verify-otp", json={"zerodha_id": "DEMO01", "otp": r.json()["dev_otp"]})
            assert r.status_code == 200
        finally:
            otps.clock = real
        ids = [f"ZZ{i:02d}" for i in range(5)]
        statuses = [s for uid in ids for s in await wrong_guesses(guesser, uid, 4)]  # 5 IDs x 4 = 20, then 25
        assert statuses[:15] == [401] * 15 and statuses[-1] == 429  # counting from the earlier five
        assert (await guesser.post("/auth/send-otp", json={"zerodha_id": "DEMO02", "email": "demo2@kta.local"})
                ).status_code == 429  # a locked-out address gets no codes either


async def test_bad_login_input_names_the_field(gateway):
    async with gateway.client() as c:
        r = await c.post("/auth/send-otp", json={"zerodha_id": "DEMO01"})
        assert r.status_code == 400 and "email" in r.text
        r = await c.post("/auth/send-otp", json={"zerodha_id": "no dots.", "email": "x@y.z"})
        assert r.status_code == 400 and "zerodha_id" in r.text
        r = await c.post("/auth/verify-otp", json={"zerodha_id": "DEMO01", "otp": "12ab"})
        assert r.status_code == 400 and "otp" in r.text
        r = await c.post("/auth/send-otp", content=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code == 400 and "body" in r.text
        r = await c.post("/auth/send-otp", json={"zerodha_id": "DEMO01", "email": "x@y.z"},
                         headers={"origin": "http://evil.example"})
        assert r.status_code == 403


async def test_unknown_user_gets_no_code(gateway):
    async with gateway.client() as c:
        r = await c.post("/auth/send-otp", json={"zerodha_id": "DEMO01", "email": "someone@else.com"})
        assert r.status_code == 200 and "dev_otp" not in r.json()


async def test_csrf_is_required_on_state_changes(gateway):
    client, csrf = await login(gateway)
    async with aclosing(client):
        r = await client.post("/api/risk/reset", json={})
        assert r.status_code == 403 and "CSRF" in r.text
        r = await client.post("/api/risk/reset", json={}, headers={"X-CSRF-Token": "wrong"})
        assert r.status_code == 403
        r = await client.post("/auth/logout", data={"csrf_token": "wrong"})
        assert r.status_code == 403
        assert (await client.get("/auth/csrf")).json()["csrf_token"] == csrf


async def test_logout_revokes_the_session(gateway):
    client, csrf = await login(gateway)
    async with aclosing(client):
        token = client.cookies.get("kta_session")
        r = await client.post("/auth/logout", data={"csrf_token": csrf})
        assert r.status_code == 303 and r.headers["location"] == "/login"
        assert "kta_session=" in r.headers["set-cookie"] and "hx-redirect" not in r.headers
    async with gateway.client(cookies={"kta_session": token}) as replay:
        assert (await replay.get("/api/status")).status_code == 401


async def test_htmx_logout_answers_200_with_hx_redirect(gateway):
    """A 303 would be followed inside htmx's XHR and HX-Redirect lost: htmx gets a 200 to act on."""
    client, csrf = await login(gateway)
    async with aclosing(client):
        token = client.cookies.get("kta_session")
        r = await client.post("/auth/logout", headers={"HX-Request": "true", "X-CSRFToken": csrf})
        assert r.status_code == 200 and r.headers["HX-Redirect"] == "/login"
        assert "location" not in r.headers and "kta_session=" in r.headers["set-cookie"]
    async with gateway.client(cookies={"kta_session": token}) as replay:
        assert (await replay.get("/api/status")).status_code == 401


async def test_browser_form_login(gateway):
    async with gateway.client() as c:
        page = await c.get("/login")
        assert 'action="/auth/send-otp"' in page.text
        r = await c.post("/auth/send-otp", data={"zerodha_id": "DEMO01", "email": "demo@kta.local"})
        assert r.status_code == 200 and 'action="/auth/verify-otp"' in r.text
        code = re.search(r'id="dev-otp">(\d{6})<', r.text).group(1)
        r = await c.post("/auth/verify-otp", data={"zerodha_id": "DEMO01", "otp": "12"})
        assert r.status_code == 400 and "6 digits" in r.text and 'name="otp"' in r.text
        r = await c.post("/auth/verify-otp", data={"zerodha_id": "DEMO01", "otp": code})
        assert r.status_code == 303 and r.headers["location"] == "/"
        assert (await c.get("/auth/csrf")).status_code == 200
        assert (await c.get("/login")).headers["location"] == "/"  # already logged in
    async with gateway.client() as c:
        r = await c.post("/auth/send-otp", data={"zerodha_id": "DEMO01", "email": "not-an-email"})
        assert r.status_code == 400 and "email" in r.text and 'action="/auth/send-otp"' in r.text
