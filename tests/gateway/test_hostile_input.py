"""Inputs that used to crash the gateway with an unlogged 500 get a 4xx naming the problem, and anything
that still fails inside is answered 500 without details and logged with its traceback."""

from __future__ import annotations

import logging
import sqlite3
from contextlib import aclosing

from tests.gateway.conftest import login

BIG = 10**21  # 22 digits: beyond any 64-bit integer
DEEP = b'{"a":' * 50_000 + b"1" + b"}" * 50_000  # 50,000 nested objects


def break_table(gateway, table: str) -> None:
    """A real fault in the gateway's own store: the table is replaced by one of another shape."""
    with sqlite3.connect(gateway.settings.data_path / "gateway.db") as db:
        db.execute(f"DROP TABLE {table}")
        db.execute(f"CREATE TABLE {table} (unrelated TEXT)")


async def test_a_22_digit_integer_is_a_400_naming_the_field(gateway):
    client, csrf = await login(gateway)
    async with aclosing(client):
        r = await client.post("/api/strategies/add", headers={"X-CSRF-Token": csrf},
                              json={"strategy": "rsi", "params": {"period": BIG}})
        assert r.status_code == 400, r.text
        assert "params.period" in r.text
        r = await client.get("/api/signals", params={"limit": str(BIG)})
        assert r.status_code == 400 and "limit" in r.text
        r = await client.delete(f"/api/alerts/channels/{BIG}", headers={"X-CSRF-Token": csrf})  # a path id
        assert r.status_code == 400 and "channel_id" in r.text


async def test_deeply_nested_json_is_a_400_with_or_without_a_session(gateway):
    async with gateway.client() as anonymous:
        r = await anonymous.post("/auth/send-otp", content=DEEP, headers={"content-type": "application/json"})
        assert r.status_code == 400, r.text
        assert "nested too deeply" in r.text
    client, csrf = await login(gateway)
    async with aclosing(client):
        for path in ("/api/live/start", "/api/strategies/add"):  # a Struct body and the hand-read one
            r = await client.post(path, content=DEEP, headers={"content-type": "application/json",
                                                               "X-CSRF-Token": csrf})
            assert r.status_code == 400, (path, r.text)
            assert "nested too deeply" in r.text


async def test_a_nul_byte_in_the_path_is_a_400(gateway):
    async with gateway.client() as c:
        r = await c.get("/static/kta.css%00.html")
        assert r.status_code == 400 and "NUL" in r.text
        assert (await c.get("/static/kta.css")).status_code == 200


async def test_an_internal_failure_is_a_bare_500_logged_with_its_traceback(gateway, caplog):
    caplog.set_level(logging.ERROR)
    break_table(gateway, "auth_failures")
    async with gateway.client() as c:
        r = await c.post("/auth/send-otp", json={"zerodha_id": "DEMO01", "email": "demo@kta.local"})
    assert r.status_code == 500
    assert "auth_failures" not in r.text and "Traceback" not in r.text  # nothing internal leaks out
    logged = [rec for rec in caplog.records if rec.levelno >= logging.ERROR and rec.exc_info]
    assert logged, "the 500 was not logged with a traceback"
    assert "no such column: key" in caplog.text and "/auth/send-otp" in caplog.text


async def test_a_failure_in_the_session_lookup_is_logged_too(gateway, caplog):
    caplog.set_level(logging.ERROR)
    client, _ = await login(gateway)
    async with aclosing(client):
        break_table(gateway, "logins")
        r = await client.get("/api/status")
    assert r.status_code == 500 and "logins" not in r.text
    assert any(rec.exc_info for rec in caplog.records if rec.levelno >= logging.ERROR)
    assert "no such column: token_hash" in caplog.text


async def test_a_503_is_logged_with_its_traceback(gateway, caplog):
    caplog.set_level(logging.WARNING)
    client, _ = await login(gateway)
    async with aclosing(client):
        r = await client.get("/api/strategies")  # no strategy worker in this test
    assert r.status_code == 503 and "Traceback" not in r.text
    (record,) = [rec for rec in caplog.records if "/api/strategies answered 503" in rec.getMessage()]
    assert record.exc_info and "strategy worker is not answering" in record.getMessage()
