"""The static-IP egress of a user's orders, set from the dashboard or the API.

Since April 2026 Kite takes order calls only from the IP registered for the Kite Connect app. The
user says where their orders leave from (a forward proxy that owns that IP, or a source address of
this machine); it is stored with the user (the proxy URL encrypted), put into the user's live broker
session so every worker's client follows it at once, checked on the spot (the address is this
machine's, the proxy answers) and shown as "orders leave from …". ``GET``/``PUT /api/settings/egress``
for API clients, ``POST /ui/settings/egress`` for the settings page's form."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit, urlunsplit

import msgspec
from litestar import Controller, Request, get, post, put
from litestar.response import Template

from gateway import users
from gateway.bodies import bad_field
from gateway.page_context import partial
from gateway.services import services_of
from shared.kite.egress import Egress, EgressError
from gateway.trading_error import TradingError
from shared.broker_sessions import SessionStoreUnavailable, set_egress


class EgressBody(msgspec.Struct, forbid_unknown_fields=True):
    proxy: str = ""  # http(s)://[user:password@]host:port of a forward proxy that owns the registered IP
    local_address: str = ""  # or a source address of this machine (the registered IP, or routed through it)


def masked(proxy: str) -> str:
    """The proxy URL as shown back: never its password."""
    if not proxy:
        return ""
    parts = urlsplit(proxy)
    if parts.password is None:
        return proxy
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


async def egress_state(settings, user_id: str) -> dict:
    """What the dashboard and the API show: the setting, where orders leave from, and whether it works now."""
    user = users.get_user(settings, user_id)
    egress = users.egress_of(settings, user) if user is not None else Egress()
    return {"proxy": masked(egress.proxy), "local_address": egress.local_address, "configured": egress.configured,
            "leaves_from": egress.describe(), "problem": await egress.problem()}


async def save(request: Request, user_id: str, body: EgressBody) -> tuple[dict, bool]:
    """Store the user's egress and apply it to their live session; (state, session_updated)."""
    services = services_of(request)
    user = users.get_user(services.settings, user_id)
    proxy = body.proxy
    if user is not None and proxy and "***" in proxy:  # the masked URL sent back unchanged: keep the password
        current = users.egress_of(services.settings, user).proxy
        proxy = current if masked(current) == proxy else proxy
    egress = users.set_egress(services.settings, user_id, proxy, body.local_address)
    try:
        applied = await set_egress(services.bus, user_id, egress.proxy, egress.local_address)
    except SessionStoreUnavailable as e:
        raise TradingError(503, f"egress saved, but not applied to a live Kite session yet: {e}", code=e.code) from None
    return await egress_state(services.settings, user_id), applied


async def set_from_cli(settings, user_id: str, proxy: str, local_address: str) -> list[str]:
    """``kta users egress``: store, apply to the live session when NATS answers, and say what now holds."""
    from shared.bus import Bus
    from shared.healthcheck import tcp_ok

    egress = users.set_egress(settings, user_id, proxy, local_address)
    lines = [f"{user_id.upper()}: orders leave from {egress.describe()}"]
    problem = await egress.problem()
    lines.append(f"  cannot be used now: {problem} (orders are refused until it works)" if problem else
                 "  checked: usable from this machine" if egress.configured else "  (no static-IP egress set)")
    url = urlsplit(settings.nats_url)
    try:
        if not tcp_ok(url.port or 4222, url.hostname or "127.0.0.1", timeout=1.0):
            raise ConnectionError("nothing listens there")
        bus = await asyncio.wait_for(Bus.connect(settings.nats_url, "gateway", connect_timeout=2.0, name="kta-cli",
                                                 creds=settings.nats_creds), 5.0)  # the sessions are the gateway's
    except Exception as e:  # noqa: BLE001 - kta not running: the next Kite login carries the setting
        lines.append(f"  applies from the next Kite login (NATS at {settings.nats_url} not reachable: {e!r})")
        return lines
    try:
        applied = await set_egress(bus, user_id.upper(), egress.proxy, egress.local_address)
    except SessionStoreUnavailable as e:
        lines.append(f"  not applied to a live Kite session yet: {e}")
        return lines
    finally:
        await bus.close()
    lines.append("  applied to the live Kite session" if applied else "  applies from the next Kite login")
    return lines


class EgressController(Controller):
    tags = ["settings"]

    @get("/api/settings/egress")
    async def read(self, request: Request, user_id: str) -> dict:
        """Where this user's orders leave from, and ``problem`` if that egress cannot be used right now."""
        return await egress_state(services_of(request).settings, user_id)

    @put("/api/settings/egress")
    async def write(self, request: Request, user_id: str, data: EgressBody) -> dict:
        """Set the egress (both fields empty: this machine's default route). 400 names a bad field."""
        try:
            state, applied = await save(request, user_id, data)
        except EgressError as e:
            raise bad_field(e.field, str(e)) from None
        return {**state, "applied_to_session": applied}

    @post("/ui/settings/egress", status_code=200, include_in_schema=False)
    async def form(self, request: Request, user_id: str) -> Template:
        form = await request.form()
        values = {k: str(form.get(k) or "").strip() for k in ("proxy", "local_address")}
        mode, error = str(form.get("mode") or "none"), None
        if mode == "proxy":
            values["local_address"] = ""
        elif mode == "local":
            values["proxy"] = ""
        elif mode == "none":
            values = {"proxy": "", "local_address": ""}
        else:
            error = EgressError("mode", "mode: this machine's default route, a proxy or a source address")
        # the choice of a proxy or an address with its field left empty is not "the default route" (saved as that)
        if mode == "proxy" and not values["proxy"]:
            error = EgressError("proxy", "the proxy's URL, like http://host:3128 (or choose this machine's default route)")
        if mode == "local" and not values["local_address"]:
            error = EgressError("local_address", "an address of this machine (or choose this machine's default route)")
        try:
            if error:
                raise error
            state, applied = await save(request, user_id, EgressBody(**values))
        except EgressError as e:
            state = await egress_state(services_of(request).settings, user_id)
            return partial("egress", request, egress=state, values={**values, "mode": mode}, errors={e.field: str(e)})
        return partial("egress", request, egress=state, values={}, errors={}, saved=True, applied=applied)
