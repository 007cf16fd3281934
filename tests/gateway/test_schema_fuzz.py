"""schemathesis against the gateway's own OpenAPI document (``/schema/openapi.json``, read with a
session like every other route), with the real workers and kite_sim behind it and DEMO01's Kite
connected: every operation is called with generated valid and invalid input, and every answer must be
below 500 and carry a status code the document declares for that operation. Every field the document
declares (parameters and body properties) is sent by at least one valid case, and every operation with
something to make invalid gets invalid cases."""

from __future__ import annotations

import asyncio
from contextlib import aclosing

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable

from tests.gateway.conftest import connect_kite, login

pytestmark = pytest.mark.slow(seconds=78)

# Cases per operation and generation mode, bounded so the suite stays fast: valid ones until every declared
# field has been sent (asserted below); invalid ones are a third of the hypothesis work at half the number.
EXAMPLES = {"positive": 10, "negative": 5}
EXCLUDED = {
    ("GET", "/sse"): "an endless event stream (tests/gateway/test_sse.py)",
    ("GET", "/api/stream"): "an endless event stream (tests/gateway/test_sse.py)",
    ("POST", "/auth/logout"): "would end the session every other case uses (tests/gateway/test_auth.py)",
}


def declared_fields(doc: dict) -> dict[str, set[tuple[str, str]]]:
    """``"METHOD /path"`` -> its parameters and body properties, as ``(where, name)``."""
    out: dict[str, set[tuple[str, str]]] = {}
    for path, item in doc["paths"].items():
        for method, op in item.items():
            fields = {(p["in"], p["name"]) for p in op.get("parameters", [])}
            for content in op.get("requestBody", {}).get("content", {}).values():
                body = content["schema"]
                if "$ref" in body:
                    body = doc["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
                fields |= {("body", name) for name in body.get("properties", {})}
            out[f"{method.upper()} {path}"] = fields
    return out


def sent_fields(case) -> set[tuple[str, str]]:
    sent = {(where, name) for where, values in (("query", case.query), ("path", case.path_parameters),
                                                 ("header", case.headers), ("cookie", case.cookies))
            for name in values or {}}
    return sent | ({("body", name) for name in case.body} if isinstance(case.body, dict) else set())


def fuzz(doc: dict, base_url: str, cookies: dict, headers: dict) -> tuple[dict[str, int], dict[str, list],
                                                                            dict[str, set], dict[str, int]]:
    """Every operation, positive and negative cases: (cases run per operation, failures grouped by
    operation, status and check, each with its count and one example, the fields the valid cases sent
    per operation, invalid cases per operation). schemathesis (and requests) are imported here, by the one
    xdist worker that runs this, not at every worker's collection (~0.5 CPU-s each)."""
    import requests
    import schemathesis
    from schemathesis import GenerationMode
    from schemathesis.checks import FailureGroup, not_a_server_error, status_code_conformance

    schema = schemathesis.openapi.from_dict(doc)
    failures: dict[str, list] = {}
    calls: dict[str, int] = {}
    sent: dict[str, set] = {}
    invalid: dict[str, int] = {}
    session = requests.Session()  # one keep-alive connection for every case
    for result in schema.get_all_operations():
        op = result.ok()
        if (op.method.upper(), op.path) in EXCLUDED:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @settings(max_examples=EXAMPLES[mode.value], derandomize=True, database=None, deadline=None,
                      phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
            @given(case=op.as_strategy(generation_mode=mode))
            def run(case) -> None:
                name = f"{op.method.upper()} {op.path}"
                calls[name] = calls.get(name, 0) + 1
                if mode is GenerationMode.POSITIVE:
                    sent.setdefault(name, set()).update(sent_fields(case))
                else:
                    invalid[name] = invalid.get(name, 0) + 1
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
    return calls, failures, sent, invalid


async def test_every_operation_answers_as_documented_and_never_5xx(stack, gw_sim):
    client, csrf = await login(stack)
    async with aclosing(client):
        assert (await connect_kite(client, gw_sim)).status_code == 303
        doc = (await client.get("/schema/openapi.json")).json()
        calls, failures, sent, invalid = await asyncio.to_thread(
            fuzz, doc, stack.url, {"kta_session": client.cookies["kta_session"]}, {"X-CSRF-Token": csrf})
    declared = {name: fields for name, fields in declared_fields(doc).items()
                if tuple(name.split(" ", 1)) not in EXCLUDED}
    assert set(calls) == set(declared), calls
    assert {name: fields - sent.get(name, set()) for name, fields in declared.items()
            if fields - sent.get(name, set())} == {}, "declared fields no valid case sent"
    assert {name for name, fields in declared.items() if fields} <= set(invalid), "operations without invalid cases"
    assert not failures, f"{sum(n for n, _ in failures.values())} of {sum(calls.values())} cases failed:\n" + "\n".join(
        f"  {key} (x{n})\n      {example}" for key, (n, example) in sorted(failures.items()))
