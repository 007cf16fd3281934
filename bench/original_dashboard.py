"""The original design's dashboard load, done plainly (reference/original-design.md §1 step 5 and §2), for
``bench/gateway_sse.py``'s first-load ratio: ``GET /`` checks the ``session_token`` cookie, loads the user's
config (api_key, api_secret), builds the user's TradingService (a KiteClient with its HTTP client, a
RiskManager, an ExecutionEngine, a TradeJournal on SQLite) and renders dashboard.html with
``is_authenticated``, ``is_running`` and ``zerodha_id``. The page has no data: the original dashboard's data
arrives later over its WebSocket, so this is the cheaper page — kta's first load carries every panel.

Run as its own process: ``python bench/original_dashboard.py PORT DB`` (DB: SQLite with ``sessions`` and
``users``; ``seed(db, user_ids)`` writes them and returns each user's cookie). Not made slow on purpose: one
TLS context for the process (httpx would otherwise build one per client, ~20 ms of CPU each)."""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import ssl
import sys
from pathlib import Path

import httpx
import jinja2
import sqlite_utils
import uvicorn
from litestar import Litestar, Request, get
from litestar.response import Response

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Trading dashboard</title>
<link rel="stylesheet" href="/static/style.css"><script src="/static/app.js" defer></script></head>
<body><header><h1>Dashboard</h1><span>{{ zerodha_id }}</span></header>
<main>{% if is_authenticated %}<p>Kite connected</p>{% else %}<a href="/auth/login">Connect Kite</a>{% endif %}
<section id="strategies"></section><section id="positions"></section><section id="orders"></section>
<button id="start" {{ "disabled" if is_running }}>Start</button><button id="stop">Stop</button>
<ul id="log"></ul></main></body></html>"""


def seed(db: Path, user_ids: list[str]) -> list[str]:
    """The users and one logged-in session each; the cookies to send."""
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE IF NOT EXISTS users (zerodha_id TEXT PRIMARY KEY, api_key TEXT, api_secret TEXT)")
    conn.execute("CREATE TABLE IF NOT EXISTS sessions (token_hash TEXT PRIMARY KEY, zerodha_id TEXT)")
    cookies = []
    for uid in user_ids:
        token = secrets.token_urlsafe(32)
        conn.execute("INSERT OR REPLACE INTO users VALUES (?, ?, ?)", (uid, "k", "s"))
        conn.execute("INSERT INTO sessions VALUES (?, ?)", (hashlib.sha256(token.encode()).hexdigest(), uid))
        cookies.append(f"session_token={token}")
    conn.commit()
    conn.close()
    return cookies


def main(port: int, db: str) -> None:
    template = jinja2.Environment(autoescape=True).from_string(PAGE)
    tls = ssl.create_default_context()  # built once: a client per request must not re-read the CA bundle (~20 ms)
    journal_path = str(Path(db).with_name("journal.db"))

    class KiteClient:
        def __init__(self, api_key: str, api_secret: str) -> None:
            self.api_key, self.api_secret = api_key, api_secret
            self.http = httpx.AsyncClient(base_url="https://api.kite.trade", timeout=10, verify=tls)
            self.access_token = ""

    class TradingService:  # built for every request, as the original's get_user_service does
        def __init__(self, zerodha_id: str, api_key: str, api_secret: str) -> None:
            self.zerodha_id = zerodha_id
            self.client = KiteClient(api_key, api_secret)
            self.risk = {"max_daily_loss": 50_000, "max_position_size": 100, "kill_switch": False}
            self.engine = {"orders": {}, "client": self.client}
            self.journal = sqlite_utils.Database(journal_path)
            self.is_running = False

        @property
        def is_authenticated(self) -> bool:
            return bool(self.client.access_token)

        async def close(self) -> None:
            await self.client.http.aclose()
            self.journal.close()

    @get("/")
    async def dashboard(request: Request) -> Response:
        token = request.cookies.get("session_token", "")
        conn = sqlite3.connect(db)
        try:
            row = conn.execute("SELECT u.zerodha_id, u.api_key, u.api_secret FROM sessions s JOIN users u "
                               "USING (zerodha_id) WHERE s.token_hash = ?",
                               (hashlib.sha256(token.encode()).hexdigest(),)).fetchone()
        finally:
            conn.close()
        if row is None:
            return Response(content="", status_code=302, headers={"Location": "/login"})
        service = TradingService(*row)
        try:
            html = template.render(is_authenticated=service.is_authenticated, is_running=service.is_running,
                                   zerodha_id=service.zerodha_id)
        finally:
            await service.close()
        return Response(content=html, media_type="text/html")

    uvicorn.run(Litestar([dashboard]), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
