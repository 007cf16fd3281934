"""Security headers on every kind of response (HSTS only in production), no inline script in any page,
and the Host and Origin checks that stop DNS rebinding and logins from opaque origins."""

from __future__ import annotations

import base64
import hashlib
import re
from contextlib import aclosing

from gateway.headers import CHART_LOGO_STYLE, EMPTY_STYLE
from gateway.templating import STATIC
from tests.gateway.conftest import login, serve
from tests.helpers import stack_settings

DEMO = {"zerodha_id": "DEMO01", "email": "demo@kta.local"}
FIXED = {"x-frame-options": "DENY", "x-content-type-options": "nosniff", "referrer-policy": "same-origin"}


def csp(headers) -> dict[str, set[str]]:
    directives = [d.strip().split() for d in headers["content-security-policy"].split(";") if d.strip()]
    return {d[0]: set(d[1:]) for d in directives}


def assert_hardened(r, where: str) -> None:
    for name, value in FIXED.items():
        assert r.headers.get(name) == value, (where, name, r.headers.get(name))
    policy = csp(r.headers)
    assert policy["script-src"] == {"'self'"}, where  # no inline script, no eval, no other origin
    assert policy["style-src"] == {"'self'", CHART_LOGO_STYLE} and policy["connect-src"] == {"'self'"}, where
    assert policy["style-src-attr"] == {"'unsafe-hashes'", EMPTY_STYLE}, where
    assert policy["frame-ancestors"] == {"'none'"} and policy["object-src"] == {"'none'"}, where
    assert "strict-transport-security" not in r.headers, where  # dev serves plain HTTP


async def test_every_kind_of_response_is_hardened(gateway):
    async with gateway.client() as anonymous:
        for path in ("/login", "/static/kta.css", "/static/vendor/htmx.min.js", "/nowhere", "/api/status"):
            assert_hardened(await anonymous.get(path), path)  # a page, static files, a 404, a 401
    client, csrf = await login(gateway)
    async with aclosing(client):
        for path in ("/", "/api/strategies", "/auth/csrf"):  # the dashboard, a 503 (no workers), JSON
            assert_hardened(await client.get(path), path)
        assert_hardened(await client.post("/api/risk/reset", json={}), "CSRF refusal")
        async with client.stream("GET", "/sse") as stream:
            assert stream.status_code == 200
            assert_hardened(stream, "/sse")


async def test_pages_carry_no_inline_script_or_handler(gateway):
    async with gateway.client() as anonymous:
        pages = [(await anonymous.get("/login")).text]
    client, _ = await login(gateway)
    async with aclosing(client):
        pages.append((await client.get("/")).text)
        r = await client.post("/auth/send-otp", data=DEMO)  # the login form's second step, in a browser
        pages.append(r.text)
    for html in pages:
        assert "<script" in html or "<form" in html
        for tag in re.findall(r"<script\b[^>]*>", html):
            assert re.search(r'\bsrc="/static/', tag), tag  # only our own files, never an inline script
        assert not re.search(r"\son[a-z]+\s*=", html), "an inline event handler"
        assert not re.search(r"\sstyle\s*=", html), "an inline style"
        assert "javascript:" not in html


def sha256(text: str) -> str:
    return f"'sha256-{base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()}'"


def test_the_only_inline_styles_allowed_are_the_chart_logo_and_an_empty_attribute():
    """The hash follows the vendored chart library: a new version with another logo style fails here."""
    source = (STATIC / "vendor" / "lightweight-charts.js").read_text()
    logo = re.search(r'createElement\("style"\),this\.\w+\.innerText="([^"]*)"', source).group(1)
    assert sha256(logo) == CHART_LOGO_STYLE
    assert sha256("") == EMPTY_STYLE


async def test_hsts_only_in_production(nats_server, data_dir, gw_sim, gateway_port):
    settings = stack_settings(nats_server, data_dir, gw_sim, gateway_port=gateway_port, env="prod")
    async with serve(settings) as gw, gw.client() as c:
        r = await c.get("/login")
        assert r.headers["strict-transport-security"].startswith("max-age=31536000")
        assert csp(r.headers)["frame-ancestors"] == {"'none'"}


async def test_dns_rebinding_cannot_reach_the_demo_login(gateway):
    port = gateway.settings.gateway_port
    async with gateway.client() as c:
        rebound = {"host": f"kta.attacker.example:{port}"}
        r = await c.post("/auth/send-otp", json=DEMO, headers=rebound)
        assert r.status_code == 400 and "dev_otp" not in r.text
        assert "kta.attacker.example" in r.text and "KTA_ALLOWED_HOSTS" in r.text
        assert (await c.get("/login", headers=rebound)).status_code == 400
        assert (await c.get("/", headers={"host": "attacker.example"})).status_code == 400
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "10.1.2.3:8000"):
            assert (await c.get("/login", headers={"host": host})).status_code == 200, host


async def test_configured_names_are_served(nats_server, data_dir, gw_sim, gateway_port):
    settings = stack_settings(nats_server, data_dir, gw_sim, gateway_port=gateway_port,
                              public_url="https://trade.example.in", allowed_hosts="kta.internal, Alt.Example")
    async with serve(settings) as gw, gw.client() as c:
        for host in ("trade.example.in", "kta.internal:8443", "alt.example"):
            assert (await c.get("/login", headers={"host": host})).status_code == 200, host
        assert (await c.get("/login", headers={"host": "example.in"})).status_code == 400


async def test_login_posts_from_an_opaque_or_foreign_origin_are_refused(gateway):
    async with gateway.client() as c:
        for origin in ("null", "http://attacker.example"):
            for path, body in (("/auth/send-otp", DEMO), ("/auth/verify-otp", {"zerodha_id": "DEMO01", "otp": "123456"})):
                r = await c.post(path, json=body, headers={"origin": origin})
                assert r.status_code == 403, (origin, path, r.text)
        r = await c.post("/auth/send-otp", json=DEMO, headers={"origin": gateway.url})
        assert r.status_code == 200 and r.json()["dev_otp"]


async def test_static_files_are_versioned_and_kept_a_year(gateway):
    """Litestar's static files never answer 304, and without a Cache-Control a browser's later first load fetched
    kta.js, htmx and the chart library again in full. Pages name each file with its content's digest; that URL is
    cacheable for a year (a new release is a new URL); an unversioned URL gets no such promise."""
    import hashlib

    from gateway.templating import STATIC

    client, _ = await login(gateway)
    async with aclosing(client):
        html = (await client.get("/")).text
        urls = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
        assert len(urls) >= 6 and all("?v=" in u for u in urls), urls
        for url in urls:
            path, _, version = url.partition("?v=")
            assert version == hashlib.sha256((STATIC / path.removeprefix("/static/")).read_bytes()).hexdigest()[:12]
            r = await client.get(url)
            assert r.status_code == 200 and r.headers["cache-control"] == "public, max-age=31536000, immutable", url
            assert_hardened(r, url)
        assert "cache-control" not in (await client.get("/static/kta.js")).headers


def test_a_static_file_that_cannot_be_read_is_named_unversioned():
    from gateway.templating import static_url

    assert static_url("no-such-file.js") == "/static/no-such-file.js"  # a 404 for it, not a page that fails
