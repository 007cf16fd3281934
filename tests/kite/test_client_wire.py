"""KiteClient's own transport (shared/kite/http1.py) against a real kite_sim over https — as kta talks to the
real Kite (https://api.kite.trade: TLS with the process's one context, certificates and host names verified)
— and over plain http: keep-alive, an answer lost mid-way and the next connection opened, an answer that
never comes, and the broker's errors as the typed exceptions the no-double-placement rule relies on."""

from __future__ import annotations

import asyncio
import ssl

import pytest
import trustme

from shared import natsd
from shared.kite import errors
from shared.kite.client import KiteClient
from shared.kite.connection import READ_RETRIES
from shared.kite.http1 import LeanTransport
from shared.kite.ratelimit import for_api_key
from tests.helpers import eventually
from tests.kite.kit import RecordingTransport, tagged
from tests.simkit import login, start_sim
from tests.tlskit import server_files, trusted_ca

pytestmark = pytest.mark.slow(seconds=30)


@pytest.fixture(scope="module")
def tls_sim(tmp_path_factory):
    """kite_sim serving https with a certificate for 127.0.0.1 that this process's TLS context trusts."""
    directory = tmp_path_factory.mktemp("sim-tls")
    sim = start_sim(directory, speed=60.0, tls=server_files(trusted_ca(), directory))
    yield sim
    sim.stop()


@pytest.fixture(params=["https", "http"])
def broker(request):
    sim = request.getfixturevalue("tls_sim" if request.param == "https" else "sim")
    sim.reset_faults()
    yield sim
    sim.reset_faults()


@pytest.fixture
async def kite(broker):
    wire = RecordingTransport()
    async with KiteClient(broker.api_key, login(broker), root=broker.root, transport=wire,
                          rate_limiter=for_api_key(broker.api_key)) as client:
        client.wire = wire
        yield client


async def test_the_default_client_speaks_the_brokers_scheme_over_one_kept_alive_connection(broker):
    token = login(broker)
    async with KiteClient(broker.api_key, token, root=broker.root, rate_limiter=for_api_key(broker.api_key)) as kite:
        transport = kite._http._transport
        assert isinstance(transport, LeanTransport)  # what the real Kite's https root gets too
        assert (await kite.profile()).user_id == broker.user_id
        oid = await kite.place_order("regular", "NSE", "INFY", "BUY", 1, "MIS", "LIMIT", price=1000.0,
                                     tag=f"wire-{broker.scheme}")
        assert [o.order_id for o in await tagged(kite, f"wire-{broker.scheme}")] == [oid]
        assert (await kite.order_history(oid))[0].order_id == oid
        assert transport.opened == 1  # four calls, one connection


async def test_the_brokers_errors_arrive_typed_with_its_message(kite, broker):
    with pytest.raises(errors.InputException) as e:
        await kite.place_order("regular", "NSE", "INFY", "BUY", 0, "MIS", "LIMIT", price=100)
    assert e.value.status == 400 and e.value.message == "Invalid `quantity`."
    broker.faults(rate_limit_next=READ_RETRIES + 1)
    with pytest.raises(errors.TooManyRequests) as e:
        await kite.holdings()
    assert e.value.status == 429 and e.value.message == "Too many requests"
    assert kite.wire.count(prefix="/portfolio/holdings", status=429) == READ_RETRIES + 1
    async with KiteClient(broker.api_key, "not-a-token", root=broker.root) as stranger:
        with pytest.raises(errors.TokenException) as e:
            await stranger.profile()
    assert e.value.status == 403
    assert kite.wire.opened == 1  # error answers keep the connection


async def test_an_answer_lost_mid_way_is_looked_up_by_its_tag_and_never_sent_twice(kite, broker):
    """kite_sim takes the order, then drops the connection in the middle of its answer: the client cannot
    know, looks the tag up (on a new connection), finds the order and returns its id — sent once."""
    broker.faults(lose_answer_next=1, lose_answer_on="POST /orders/regular")
    oid = await kite.place_order("regular", "NSE", "INFY", "BUY", 1, "MIS", "LIMIT", price=1000.0, tag="lost-took")
    assert broker.admin("faults", {})["counts"]["answer_lost"] == 1  # the answer really was lost
    assert [o.order_id for o in await tagged(kite, "lost-took")] == [oid]
    assert [st for m, p, st in kite.wire.exchanges if m == "POST"] == [None]  # sent once, its answer lost
    assert kite.wire.opened == 2  # the dropped connection was not reused

    broker.faults(lose_answer_next=1, lose_answer_on="POST /orders/regular", lose_answer_effect=False)
    with pytest.raises(errors.OrderUnknown) as e:  # dropped before the broker acted: not in the book
        await kite.place_order("regular", "NSE", "INFY", "BUY", 1, "MIS", "LIMIT", price=1000.0, tag="lost-none")
    assert e.value.tag == "lost-none"
    assert await tagged(kite, "lost-none") == []
    assert [st for m, p, st in kite.wire.exchanges if m == "POST"] == [None, None]  # never sent again
    assert (await kite.profile()).user_id == broker.user_id  # and the client goes on


async def test_an_answer_that_never_comes_is_an_unknown_outcome_never_a_second_order(kite, broker):
    impatient = KiteClient(broker.api_key, kite.access_token, root=broker.root, timeout=0.3,
                           rate_limiter=for_api_key(broker.api_key))
    broker.faults(latency_ms=600)  # the sim takes the order after the client gave up waiting for it
    try:
        with pytest.raises(errors.OrderUnknown) as e:  # ...and the lookup (delayed as well) times out too
            await impatient.place_order("regular", "NSE", "INFY", "BUY", 1, "MIS", "LIMIT", price=1000.0,
                                        tag="slow-answer")
        assert "timeout" in e.value.message
    finally:
        broker.reset_faults()
        await impatient.aclose()
    (order,) = await eventually(lambda: tagged(kite, "slow-answer"), what="the order the sim took")
    assert order.tag == "slow-answer"


@pytest.mark.parametrize("scheme", ["https", "http"])
async def test_a_broker_that_does_not_listen_gets_nothing_and_says_so(scheme):
    async with KiteClient("k", "t", root=f"{scheme}://127.0.0.1:{natsd.free_port()}") as kite:
        with pytest.raises(errors.NotSent) as e:
            await kite.place_order("regular", "NSE", "INFY", "BUY", 1, "MIS", "LIMIT", price=1000.0, tag="never")
    assert e.value.status == 503 and "cannot reach the broker" in e.value.message


async def test_a_certificate_kta_does_not_trust_is_refused_before_anything_is_sent():
    """A server whose certificate no trusted authority signed (a man in the middle): the handshake fails,
    the order is refused as not sent, and the server never sees a byte of it."""
    received: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            received.append(await reader.read(65536))
        except (ssl.SSLError, OSError):
            pass
        writer.close()

    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(server_ctx)  # an authority nobody trusts
    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        async with KiteClient("k", "t", root=f"https://127.0.0.1:{port}") as kite:
            with pytest.raises(errors.NotSent) as e:
                await kite.place_order("regular", "NSE", "INFY", "BUY", 1, "MIS", "LIMIT", price=1000.0, tag="mitm")
    finally:
        server.close()
        await server.wait_closed()
    assert "CERTIFICATE_VERIFY_FAILED" in e.value.message
    assert not any(received)
