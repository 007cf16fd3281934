"""Backtests through the real stack: the gateway under uvicorn, the strategy worker (its job pool in
spawned processes) and NATS — run, progress on the SSE stream, results, export, bad input named, a sweep
that records a failing trial and goes on, cancel, another user's run unseen."""

from __future__ import annotations

import json
from contextlib import aclosing

import pytest

from gateway import users
from shared import natsd
from strategy_worker.main import amain as strategy_main
from tests.backtest.kit import seed_store
from tests.gateway.conftest import USER_B, login, serve
from tests.gateway.sse import SSE
from tests.helpers import running, stack_settings, wait_health

pytestmark = pytest.mark.slow(seconds=15)


@pytest.fixture
async def stack(nats_server, data_dir, bus):
    settings = stack_settings(nats_server, data_dir, gateway_port=natsd.free_port(), env="dev", backtest_workers=2)
    users.ensure_demo_user(settings)
    users.add_user(settings, **USER_B)
    days = seed_store(settings.data_path, days=4)
    # the gateway first: its build holds the loop, and a running worker would miss its leases' renewals
    # (tests.gateway.conftest.serve_with_workers); the heartbeat is well inside the client's 15 s read timeout
    async with serve(settings, heartbeat=2.0) as gw, running(strategy_main, settings):
        await wait_health(bus, "strategy", timeout=40)
        yield gw, days


def body(days, **kw):
    return {"strategy": "ema_crossover", "symbols": ["INFY", "TCS"], "start": str(days[1]), "end": str(days[-1]),
            "interval": "minute", "params": {"fast": 5, "slow": 20, "quantity": 10}, "warmup_bars": 50, **kw}


async def until(sse: SSE, run_id: str, states: set[str]) -> list[dict]:
    seen = []
    while True:
        _, name, data = await sse.next_event(60)
        if name != "backtest":
            continue
        ev = json.loads(data)
        if ev["backtest_id"] == run_id:
            seen.append(ev)
            if ev["state"] in states:
                return seen


async def test_run_progress_results_export(stack):
    gw, days = stack
    client, csrf = await login(gw)
    headers = {"X-CSRFToken": csrf}
    async with aclosing(client), SSE(client, "/api/stream") as sse:
        r = await client.post("/api/backtests/", json=body(days), headers=headers)
        assert r.status_code == 202, r.text
        run_id = r.json()["backtest_id"]
        seen = await until(sse, run_id, {"done", "failed"})
        assert seen[-1]["state"] == "done" and seen[0]["state"] == "queued"
        run = (await client.get(f"/api/backtests/{run_id}?chart=true")).json()
        m = run["metrics"]
        assert run["state"] == "done" and m["bars"] == 2 * 3 * 375 and m["trades"] > 0
        assert m["net_pnl"] == m["gross_pnl"] - m["charges"] and set(run["per_symbol"]) == {"NSE:INFY", "NSE:TCS"}
        assert run["results"]["curve"] and run["results"]["fills"] and len(run["chart"]["NSE:INFY"]) > 100
        csv = await client.get(f"/api/backtests/{run_id}/export?what=trades&format=csv")
        assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
        lines = csv.text.strip().splitlines()
        assert lines[0].startswith("symbol,strategy_id,direction") and len(lines) == m["trades"] + 1
        listed = (await client.get("/api/backtests/")).json()
        assert listed[0]["id"] == run_id
    other, _ = await login(gw, "DEMO02", "demo2@kta.local")
    async with aclosing(other):
        assert (await other.get(f"/api/backtests/{run_id}")).status_code == 404


BAD = [({"symbols": ["NOSUCH"]}, "symbols"), ({"interval": "2minute"}, "interval"),
       ({"params": {"fast": 0}}, "params.fast"), ({"start": "2020-01-01", "end": "2020-01-31"}, "start"),
       ({"end": "2000-01-01"}, "end"), ({"capital": "lots"}, "capital")]


async def test_bad_input_is_a_400_naming_the_field(stack):
    gw, days = stack
    client, csrf = await login(gw)
    async with aclosing(client):
        for change, field in BAD:
            r = await client.post("/api/backtests/", json=body(days, **change), headers={"X-CSRFToken": csrf})
            assert r.status_code == 400, (change, r.text)
            got = r.json()
            named = got.get("field") or (got.get("extra") or [{}])[0].get("key")
            assert named == field, (change, got)
        r = await client.post("/api/backtests/abcdefabcdef/cancel", headers={"X-CSRFToken": csrf})
        assert r.status_code == 404 and r.json()["field"] == "id"


async def test_sweep_records_a_failing_trial_and_cancel_keeps_nothing(stack):
    gw, days = stack
    client, csrf = await login(gw)
    headers = {"X-CSRFToken": csrf}
    async with aclosing(client), SSE(client, "/api/stream") as sse:
        sweep = {"base": body(days, symbols=["INFY"]), "grid": {"fast": [5, 8, 30], "slow": [20]}, "in_sample": 0.5}
        r = await client.post("/api/backtests/sweeps", json=sweep, headers=headers)
        assert r.status_code == 202, r.text
        run_id = r.json()["backtest_id"]
        assert (await until(sse, run_id, {"done", "failed"}))[-1]["state"] == "done"
        report = (await client.get(f"/api/backtests/{run_id}")).json()["extra"]
        assert report["trial_count"] == 3
        failed = [t for t in report["trials"] if not t["ok"]]
        assert len(failed) == 1 and failed[0]["params"]["fast"] == 30 and failed[0]["field"] == "params.fast"
        window = report["windows"][0]
        assert window["trials"] == 3 and window["params"]["fast"] in (5, 8)
        assert window["is_score"] is not None and "oos_score" in window and window["oos_metrics"]["bars"] > 0
        # a long sweep cancelled as soon as it runs: a state, no results
        big = {"base": body(days), "grid": {"fast": list(range(3, 19)), "slow": [20, 25, 30, 40]}}
        run_id = (await client.post("/api/backtests/sweeps", json=big, headers=headers)).json()["backtest_id"]
        await until(sse, run_id, {"running"})
        assert (await client.post(f"/api/backtests/{run_id}/cancel", headers=headers)).status_code == 200
        assert (await until(sse, run_id, {"cancelled", "done"}))[-1]["state"] == "cancelled"
        row = (await client.get(f"/api/backtests/{run_id}")).json()
        assert row["state"] == "cancelled" and row["extra"] == {} and "results" not in row
