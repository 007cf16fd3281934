"""shared/kite/lean.py: a Kite call over the lean transport skips httpx's client layer (issue #18: ~0.25 ms
of CPU a request) and still puts on the wire what httpx would, and reads every answer as before."""

from __future__ import annotations

import gzip
import json
import random
from urllib.parse import urlencode

import httpx
import pytest

from shared.kite import errors
from shared.kite.client import KiteClient
from shared.kite.lean import _text, encoded
from shared.kite.ratelimit import RateLimiter
from tests.kite.kit import http_server

ORDER = b'{"status":"success","data":{"order_id":"151220000000000"}}'


def answering(seen: list[tuple[str, str, dict, bytes]]):
    """A broker that keeps each request (method, target, headers, body) and answers by path."""
    def respond(handler):
        seen.append((handler.command, handler.path, {k.lower(): v for k, v in handler.headers.items()}, handler.body))
        if handler.path.startswith("/orders/regular"):
            return 200, "application/json", ORDER
        if handler.path.startswith("/quote"):
            return 200, "application/json", json.dumps({"status": "success", "data": {}}).encode()
        if handler.path.startswith("/instruments"):
            return 200, "text/csv; charset=utf-8", "instrument_token,tradingsymbol\n1,ÄBC\n".encode()
        return 400, "application/json", b'{"status":"error","message":"bad price","error_type":"InputException"}'
    return respond


async def calls(kite: KiteClient) -> None:
    assert await kite.place_order("regular", "NSE", "INFY", "BUY", 3, "MIS", "LIMIT", price=1501.5, tag="t1") \
        == "151220000000000"
    assert await kite.cancel_order("regular", "151220000000000") == "151220000000000"
    await kite.quote("NSE:INFY", "NSE:M&M")
    assert "ÄBC" in await kite._request("GET", "/instruments")
    with pytest.raises(errors.InputException, match="bad price"):
        await kite.modify_order("co", "1", price=1.0)


async def test_a_call_skips_httpx_client_layer_and_writes_what_httpx_writes(monkeypatch):
    sent_by_httpx = []
    real_send = httpx.AsyncClient.send

    async def counted(self, request, **kw):
        sent_by_httpx.append(request.url.path)
        return await real_send(self, request, **kw)

    monkeypatch.setattr(httpx.AsyncClient, "send", counted)
    seen = []
    with http_server(answering(seen)) as (root, _):
        async with KiteClient("key", "token", root=root, rate_limiter=RateLimiter()) as kite:
            await calls(kite)
        assert sent_by_httpx == []  # none went through httpx's client
        async with KiteClient("key", "token", root=root, rate_limiter=RateLimiter()) as kite:
            async def hook(request) -> None:  # an event hook: httpx's own path, which runs it
                pass
            kite._http.event_hooks["request"].append(hook)
            await calls(kite)
    lean, full = seen[:5], seen[5:]
    assert len(sent_by_httpx) == 5
    assert [(m, t, b) for m, t, _, b in lean] == [(m, t, b) for m, t, _, b in full]
    assert lean[0][1] == "/orders/regular" and lean[2][1] == "/quote?i=NSE%3AINFY&i=NSE%3AM%26M"
    assert lean[0][3] == b"exchange=NSE&tradingsymbol=INFY&transaction_type=BUY&quantity=3&product=MIS&" \
                         b"order_type=LIMIT&price=1501.5&tag=t1"
    for (_, _, ours, _), (_, _, theirs, _) in zip(lean, full):
        ours.pop("accept-encoding"), theirs.pop("accept-encoding")  # httpx's lists what its install decodes
        assert ours == theirs
        assert ours["authorization"] == "token key:token" and ours["x-kite-version"] == "3"


async def test_a_compressed_answer_is_read_and_a_garbled_one_is_a_network_error():
    def respond(handler):
        if handler.path == "/user/profile":
            body = json.dumps({"status": "success", "data": {"user_id": "AB1234"}}).encode()
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Encoding", "gzip")
            packed = gzip.compress(body)
            handler.send_header("Content-Length", str(len(packed)))
            handler.end_headers()
            handler.wfile.write(packed)
            return None
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Encoding", "gzip")
        handler.send_header("Content-Length", "4")
        handler.end_headers()
        handler.wfile.write(b"junk")
        return None

    with http_server(respond) as (root, _):
        async with KiteClient("key", "token", root=root, rate_limiter=RateLimiter()) as kite:
            assert (await kite.profile()).user_id == "AB1234"
            with pytest.raises(errors.NetworkException, match="does not decode"):
                await kite._request("GET", "/user/margins")



def test_a_form_is_encoded_as_urlencode_encodes_it():
    """lean.encoded passes plain words through itself (urlencode's per-character quoting cost ~45 µs an order):
    whatever the text — reserved characters, spaces, non-ASCII, digits that are not ASCII — it writes what
    urlencode writes."""
    rng = random.Random(18)
    alphabet = "aZ09_.-~ +&=%:/?#@!*'()[],;$\"<>|\\^`{}\t\nÄé₹²٣ﬁ"
    for _ in range(2000):
        fields = [("".join(rng.choices(alphabet, k=rng.randint(0, 6))) or "k",
                   rng.choice([None, True, False, rng.randint(-5, 10**6),
                               "".join(rng.choices(alphabet, k=rng.randint(0, 12)))]))
                  for _ in range(rng.randint(1, 4))]
        assert encoded(fields) == urlencode([(k, _text(v)) for k, v in fields])
    assert encoded({"i": ["NSE:INFY", "NSE:M&M"], "price": "1501.5"}) == "i=NSE%3AINFY&i=NSE%3AM%26M&price=1501.5"
