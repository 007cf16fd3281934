"""``kta doctor``: the pre-flight for trading through the real Kite, checked against the live settings.

Each check says what it found, in words, and what to do about it (docs/real-kite.md explains each
step). Nothing here reaches the internet unless the user asks for it (``kta doctor --network``): then
the broker's REST root is reached directly and through each user's egress, and each connected user's
session is asked for a quote (the market-data subscription)."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from shared import healthcheck
from shared.config import Settings
from shared.ist import IST

OK, INFO, WARN, FAIL = "ok", "info", "warn", "FAIL"
REAL = {"kite_root": "https://api.kite.trade", "kite_ws_root": "wss://ws.kite.trade",
        "kite_login_url": "https://kite.zerodha.com/connect/login"}
SIM_API_KEY = "kta-demo"


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"[{self.status:>4}] {self.name}: {self.detail}"
        return text + (f"\n       → {self.fix}" if self.fix else "")


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def broker(settings: Settings) -> list[Check]:
    out = []
    for key, real in REAL.items():
        value = getattr(settings, key)
        env = f"KTA_{key.upper()}"
        if value.rstrip("/") == real:
            out.append(Check(env, OK, value))
        elif _loopback(value):
            out.append(Check(env, WARN, f"{value} is on this machine: kite_sim, the paper broker",
                             f"set {env}={real} to trade through Kite"))
        else:
            out.append(Check(env, WARN, f"{value} is not Kite's ({real})", f"set {env}={real} unless this is intended"))
    return out


def public_url(settings: Settings) -> list[Check]:
    redirect = f"{settings.gateway_url}/auth/kite/callback"
    register = Check("Kite redirect URL", INFO, f"register {redirect} as the redirect URL of your Kite Connect app "
                                              "(developers.kite.trade → My apps)")
    if not settings.public_url:
        return [register, Check("KTA_PUBLIC_URL", WARN, f"not set: Kite sends you back to {settings.gateway_url}, "
                                                        "which only a browser on this machine can open",
                                "set KTA_PUBLIC_URL=https://your.domain (TLS in front of the gateway)")]
    if _loopback(settings.public_url):
        return [register, Check("KTA_PUBLIC_URL", INFO, f"{settings.public_url}: this machine only")]
    if urlsplit(settings.public_url).scheme != "https":
        return [register, Check("KTA_PUBLIC_URL", FAIL, f"{settings.public_url} is reachable from other machines "
                                                        "without TLS: session cookies and OTPs would cross in clear",
                                "serve the gateway behind TLS (Caddy, nginx or the Ingress in deploy/k8s) and use an https:// URL")]
    return [register, Check("KTA_PUBLIC_URL", OK, settings.public_url)]


def login_and_mail(settings: Settings) -> list[Check]:
    public = bool(settings.public_url) and not _loopback(settings.public_url)
    out = []
    if settings.env == "dev":
        out.append(Check("KTA_ENV", FAIL if public else WARN, "dev: one-time login codes are shown on the page",
                         "set KTA_ENV=prod so codes go by email only"))
    else:
        out.append(Check("KTA_ENV", OK, "prod"))
    if settings.smtp_host:
        out.append(Check("SMTP", OK, f"{settings.smtp_host}:{settings.smtp_port} as {settings.smtp_from}"
                                     f"{' (STARTTLS)' if settings.smtp_starttls else ''}"))
    else:
        out.append(Check("SMTP", FAIL if settings.env == "prod" else WARN,
                         "no mail server: login codes and alert emails cannot be sent",
                         "set KTA_SMTP_HOST, KTA_SMTP_PORT, KTA_SMTP_USER, KTA_SMTP_PASSWORD, KTA_SMTP_FROM"))
    return out


def secrets(settings: Settings) -> list[Check]:
    if settings.secret_key:
        return [Check("KTA_SECRET_KEY", OK, "set (api_secrets, tokens and proxy passwords are encrypted with it)")]
    path = Path(settings.data_dir) / "secret.key"  # where shared.secrets.load_key generates it
    if path.exists():
        return [Check("secret key", OK, f"{path} (back it up: without it the stored api_secrets cannot be read)")]
    return [Check("secret key", INFO, f"generated into {path} on first start: back it up")]


def users(settings: Settings, problems: dict[str, str | None]) -> list[Check]:
    """``problems``: user → why their egress cannot be used now (None: it can), checked by the caller."""
    from gateway import users as registry

    rows = registry.list_users(settings)
    if not rows:
        return [Check("users", FAIL, "nobody can log in", "kta users add AB1234 --email you@example.com "
                                                          "--api-key … --api-secret … (the id is your Zerodha client id)")]
    out = []
    for row in rows:
        user = registry.get_user(settings, row["zerodha_id"])
        egress = registry.egress_of(settings, user)
        name = f"user {user.zerodha_id}"
        if user.api_key == SIM_API_KEY:
            out.append(Check(name, WARN, "uses kite_sim's demo app (api_key kta-demo)",
                             "kta users add with the api_key and api_secret of your Kite Connect app"))
            continue
        problem = problems.get(user.zerodha_id)
        if problem:
            out.append(Check(name, FAIL, f"orders leave from {egress.describe()}, which cannot be used: {problem}",
                             f"fix it, or kta users egress {user.zerodha_id} --proxy URL | --local-address IP"))
        elif egress.configured:
            out.append(Check(name, OK, f"orders leave from {egress.describe()}: register that IP in "
                                       "developers.kite.trade → Profile → IP Whitelist"))
        else:
            out.append(Check(name, WARN, "orders leave from this machine's default route: Kite refuses them unless "
                                         "its public IP is in your IP Whitelist",
                             f"register this machine's static IP, or kta users egress {user.zerodha_id} --proxy URL"))
    return out


def sessions(states: dict[str, dict]) -> list[Check]:
    """``states``: user → the broker session's state as the gateway shows it (live / expired / absent)."""
    out = []
    for user_id, state in sorted(states.items()):
        if state["state"] == "live":
            until = datetime.fromtimestamp(state["expires_at"], IST).strftime("%d %b %H:%M IST") \
                if state["expires_at"] else "06:00 IST"
            out.append(Check(f"session {user_id}", OK, f"connected to Kite until {until} (Kite ends every session "
                                                       "at 06:00 IST: log in each trading morning)"))
        else:
            out.append(Check(f"session {user_id}", INFO, f"{state['state']}: Connect Kite from the dashboard "
                                                         "before the market opens"))
    return out


def calendar() -> list[Check]:
    from shared.market_calendar import CALENDAR

    last = CALENDAR.last_known_day
    days = (last - datetime.now(IST).date()).days
    detail = f"NSE/BSE trading days known until {last:%d %b %Y} (exchange-calendars {CALENDAR.version})"
    if days < 0:  # kta still trades (weekdays), but would expect ticks on a holiday and seed across it
        return [Check("exchange calendar", WARN, detail + ": holidays after that are unknown",
                      "pip install -U exchange-calendars")]
    if days < 31:
        return [Check("exchange calendar", WARN, detail, "pip install -U exchange-calendars once it lists next year")]
    return [Check("exchange calendar", OK, detail)]


def market_data() -> list[Check]:
    return [Check("Kite Connect plan", INFO, "kta needs the paid Kite Connect plan (₹500 a month per API key): it "
                                             "carries the WebSocket ticks and historical candles; the free Personal "
                                             "plan has neither (ticks and seeding would fail)")]


async def network(settings: Settings, egresses: dict[str, object], clients) -> list[Check]:
    """Only when the user asks (``--network``): the REST root directly and through each egress, and a
    quote per connected user (the market-data subscription)."""
    from shared.kite import errors
    from shared.kite.client import KiteClient

    out = []
    for label, kw in [("directly", {})] + [(f"for {u} via {e.describe()}", {"proxy": e.proxy or None,
                                                                           "local_address": e.local_address or None})
                                           for u, e in egresses.items() if e.configured]:
        try:
            async with KiteClient("doctor", root=settings.kite_root, timeout=5.0, **kw) as probe:
                await probe._send("POST" if kw else "GET", "/orders/regular" if kw else "/", auth=False)
            out.append(Check(f"reach {settings.kite_root}", OK, label))
        except errors.KiteError as e:
            out.append(Check(f"reach {settings.kite_root}", FAIL, f"{label}: {e.message}"))
    for user_id in list(egresses) if clients is not None else []:
        try:
            kite = await clients.client(user_id)
        except Exception:  # noqa: BLE001 - not connected: nothing to ask
            continue
        try:
            await kite.ltp("NSE:INFY")
            out.append(Check(f"market data {user_id}", OK, "quotes answer"))
        except errors.PermissionException as e:
            out.append(Check(f"market data {user_id}", FAIL, f"{e.message}: no market-data subscription",
                             "subscribe the app to Kite Connect (₹500/month) on developers.kite.trade"))
        except errors.KiteError as e:
            out.append(Check(f"market data {user_id}", WARN, e.message))
    return out


async def run(settings: Settings, with_network: bool = False) -> list[Check]:
    from gateway import users as registry
    from shared.kite.egress import Egress

    egresses: dict[str, Egress] = {}
    for row in registry.list_users(settings):
        egresses[row["zerodha_id"]] = registry.egress_of(settings, registry.get_user(settings, row["zerodha_id"]))
    problems = dict(zip(egresses, await asyncio.gather(*(e.problem() for e in egresses.values())), strict=True))
    checks = [*broker(settings), *public_url(settings), *login_and_mail(settings), *secrets(settings),
              *users(settings, problems), *calendar(), *market_data()]
    url = urlsplit(settings.nats_url)
    if not healthcheck.tcp_ok(url.port or 4222, url.hostname or "127.0.0.1", timeout=1.0):
        checks.append(Check("NATS", INFO, f"{settings.nats_url} not running: sessions not checked (kta up starts it)"))
        return checks + (await network(settings, egresses, None) if with_network else [])
    from gateway.broker_clients import BrokerClients
    from shared.bus import Bus

    bus = await asyncio.wait_for(Bus.connect(settings.nats_url, "gateway", name="kta-doctor",
                                             creds=settings.nats_creds), 5.0)
    clients = BrokerClients(bus, settings)
    try:
        checks += sessions({u: await clients.state(u) for u in egresses})
        if with_network:
            checks += await network(settings, egresses, clients)
    finally:
        await clients.close()
        await bus.close()
    return checks


def report(checks: Iterable[Check]) -> tuple[str, int]:
    """The text to print and the exit code (1 when anything FAILs)."""
    checks = list(checks)
    failed = sum(1 for c in checks if c.status == FAIL)
    warned = sum(1 for c in checks if c.status == WARN)
    lines = [c.line() for c in checks]
    lines.append(f"\n{failed} to fix, {warned} to look at (docs/real-kite.md) — checked {time.strftime('%H:%M:%S')}")
    return "\n".join(lines), 1 if failed else 0
