"""schemathesis against the gateway's own OpenAPI document (``/schema/openapi.json``, read with a
session like every other route), with the real workers and kite_sim behind it and DEMO01's Kite
connected: every operation is called with generated valid and invalid input, and every answer must be
below 500 and carry a status code the document declares for that operation."""

from __future__ import annotations

import asyncio
from contextlib import aclosing

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import FailureGroup, not_a_server_error, status_code_conformance

from tests.gateway.conftest import connect_kite, login

pytestmark = pytest.mark.slow(seconds=78)

EXAMPLES = 10  # per operation and generation mode: bounded so the suite stays fast
EXCLUDED = {
    ("GET", "/sse"): "an endless event stream (tests/gateway/test_sse.py)",
    ("GET", "/api/stream"): "an endless event stream (tests/gateway/test_sse.py)",
    ("POST", "/auth/logout"): "would end the session every other case uses (tests/gateway/test_auth.py)",
}


def fuzz(doc: dict, base_url: str, cookies: dict, headers: dict) -> tuple[dict[str, int], dict[str, list]]:
    """Every operation, positive and negative cases: (cases run per operation, failures grouped by
    operation, status and check, each with its count and one example)."""
    schema = schemathesis.openapi.from_dict(doc)
    failures: dict[str, list] = {}
    calls: dict[str, int] = {}
    session = requests.Session()  # one keep-alive connection for every case
    for result in schema.get_all_operations():
        op = result.ok()
        if (op.method.upper(), op.path) in EXCLUDED:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
                      phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
            @given(case=op.as_strategy(generation_mode=mode))
            def run(case) -> None:
                calls[f"{op.method.upper()} {op.path}"] = calls.get(f"{op.method.upper()} {op.path}", 0) + 1
                response = case.call(base_url=base_url, session=session, cookies=cookies, headers=headers,
                                     timeout=30, allow_redirects=False)
                try:
                    case.validate_response(response, checks=[not_a_server_error, status_code_conformance])
                except FailureGroup as e:  # collected and reported together below
                    what = "; ".join(sorted({f.title for f in e.exceptions}))
                    key = f"{op.method.upper()} {op.path} -> {response.status_code} {what}"
                    group = failures.setdefault(key, [0, f"{case.as_curl_command()}\n      {response.text[:160]}"])
                    group[0] += 1

            try:
                run()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # nothing to make invalid: no parameters, no body
    return calls, failures


async def test_every_operation_answers_as_documented_and_never_5xx(stack, gw_sim):
    client, csrf = await login(stack)
    async with aclosing(client):
        assert (await connect_kite(client, gw_sim)).status_code == 303
        doc = (await client.get("/schema/openapi.json")).json()
        calls, failures = await asyncio.to_thread(
            fuzz, doc, stack.url, {"kta_session": client.cookies["kta_session"]}, {"X-CSRF-Token": csrf})
    operations = {f"{method.upper()} {path}" for path, item in doc["paths"].items() for method in item}
    assert set(calls) == operations - {f"{m} {p}" for m, p in EXCLUDED}, calls
    assert not failures, f"{sum(n for n, _ in failures.values())} of {sum(calls.values())} cases failed:\n" + "\n".join(
        f"  {key} (x{n})\n      {example}" for key, (n, example) in sorted(failures.items()))
