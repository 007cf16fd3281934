"""shared/kite/http1.py, the lean HTTP/1.1 transport under kta's Kite client (issue #18), against a real
server on 127.0.0.1 that answers each way HTTP/1.1 allows: Content-Length, chunked, until close — over
TLS (as the real Kite) and plain (as kite_sim)."""

import asyncio
import contextlib
import socket
import ssl

import httpx
import pytest
import trustme

from shared import eager
from shared.kite.http1 import LeanTransport
from tests.helpers import eventually

BODY = b'{"status":"success","data":{"order_id":"151220000000000"}}'


class Server:
    """Answers by path: /length, /chunked, /close (body until close), /silent (never answers),
    /drop (closes without answering); counts connections and keeps each request's bytes."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[bytes] = []
        self.writers: list[asyncio.StreamWriter] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        with contextlib.suppress(Exception, asyncio.CancelledError):  # the test's end cancels what is left
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length) if length else b""
                self.requests.append(head + body)
                path = head.split(b" ")[1]
                if path.startswith(b"/length"):
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                                 % (len(BODY), BODY))
                elif path.startswith(b"/chunked"):
                    writer.write(b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\n"
                                 b"transfer-encoding: chunked\r\n\r\n")
                    for i in range(0, len(BODY), 7):
                        part = BODY[i:i + 7]
                        writer.write(b"%x;ext=1\r\n%s\r\n" % (len(part), part))
                    writer.write(b"0\r\nx-trailer: yes\r\n\r\n")
                elif path.startswith(b"/close"):
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n" + BODY)
                    await writer.drain()
                    writer.close()
                    return
                elif path.startswith(b"/drop"):
                    writer.close()
                    return
                # /silent: no answer
                await writer.drain()


@pytest.fixture(params=["https", "http"])
async def server(request):
    srv = Server()
    server_ctx = client_ctx = None
    if request.param == "https":
        ca = trustme.CA()
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
        client_ctx = ssl.create_default_context()
        ca.configure_trust(client_ctx)
    srv.transport = lambda: LeanTransport(ssl_context=client_ctx)
    tcp = await asyncio.start_server(srv.handle, "127.0.0.1", 0, ssl=server_ctx)
    srv.root = f"{request.param}://127.0.0.1:{tcp.sockets[0].getsockname()[1]}"
    try:
        yield srv
    finally:
        for w in srv.writers:
            w.close()
        tcp.close()
        await tcp.wait_closed()


async def test_answers_by_length_chunked_or_close_and_connections_are_reused(server):
    async with httpx.AsyncClient(base_url=server.root, transport=server.transport(), headers={"X-Kite-Version": "3"}) as c:
        for _ in range(3):
            r = await c.post("/length", data={"tag": "abc", "quantity": "1"}, headers={"Authorization": "token k:t"})
            assert r.status_code == 200 and r.json()["data"]["order_id"] == "151220000000000"
        assert server.connections == 1  # kept alive
        r = await c.get("/chunked?x=1")
        assert r.status_code == 201 and r.content == BODY and "transfer-encoding" not in r.headers
        assert server.connections == 1
        r = await c.get("/close")
        assert r.status_code == 200 and r.content == BODY
        r = await c.get("/length")  # the closed one is not reused
        assert r.content == BODY and server.connections == 2
    sent = server.requests[0]
    assert sent.startswith(b"POST /length HTTP/1.1\r\n")
    for header in (b"host: 127.0.0.1", b"x-kite-version: 3", b"authorization: token k:t",
                   b"content-type: application/x-www-form-urlencoded", b"content-length: 18"):
        assert header in sent.lower()
    assert sent.endswith(b"\r\n\r\ntag=abc&quantity=1")
    assert server.requests[3].startswith(b"GET /chunked?x=1 HTTP/1.1\r\n")


async def test_concurrent_requests_each_get_their_own_answer(server):
    async with httpx.AsyncClient(base_url=server.root, transport=server.transport()) as c:
        answers = await asyncio.gather(*(c.get(f"/length?n={n}") for n in range(12)),
                                       *(c.get(f"/chunked?n={n}") for n in range(12)))
    assert all(r.content == BODY for r in answers)
    assert len(server.requests) == 24


async def test_a_connection_the_server_closed_while_idle_is_not_reused(server):
    transport = server.transport()
    async with httpx.AsyncClient(base_url=server.root, transport=transport) as c:
        assert (await c.get("/length")).content == BODY
        server.writers[0].close()  # the server drops the idle keep-alive connection
        await server.writers[0].wait_closed()
        (idle,) = transport._idle.values()
        await eventually(lambda: not idle[0].usable(), what="the client side saw the connection close")
        assert (await c.post("/length", data={"tag": "t2"})).content == BODY  # a new connection, the POST sent once
    assert server.connections == 2 and sum(b"tag=t2" in r for r in server.requests) == 1
    assert transport.opened == 2


async def test_errors_say_whether_anything_was_sent(server):
    """Nothing written: ConnectError (the Kite client's NotSent). Written, no answer: ReadTimeout /
    ReadError (the outcome is unknown: kta looks the order up by its tag, never sends it again)."""
    async with httpx.AsyncClient(base_url=server.root, transport=server.transport(), timeout=0.5) as c:
        with pytest.raises(httpx.ReadTimeout):
            await c.post("/silent", data={"tag": "s"})
        with pytest.raises(httpx.ReadError):
            await c.post("/drop", data={"tag": "d"})
        assert (await c.get("/length")).content == BODY  # the client goes on
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    async with httpx.AsyncClient(base_url=f"{server.root.split(':')[0]}://127.0.0.1:{port}",
                                 transport=server.transport()) as c:
        with pytest.raises(httpx.ConnectError):
            await c.get("/length")


async def test_with_a_connection_free_a_request_is_on_the_wire_in_the_callers_turn():
    """A free connection slot is taken at once, not in a task of its own a turn of the loop later: a request
    started eagerly (the execution worker's sends, shared/eager.py) is written before its caller's turn ends —
    not after everything else the loop has queued (a bar's other signals)."""
    loop = asyncio.get_running_loop()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    answer = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(BODY), BODY)
    transport = LeanTransport()
    try:
        root = f"http://127.0.0.1:{listener.getsockname()[1]}"
        async with httpx.AsyncClient(base_url=root, transport=transport) as c:
            first = asyncio.ensure_future(c.get("/length"))
            conn, _ = await loop.sock_accept(listener)
            with conn:
                await loop.sock_recv(conn, 65536)
                await loop.sock_sendall(conn, answer)
                assert (await first).content == BODY  # and its connection kept alive
                request = c.build_request("POST", "/orders/regular", data={"tag": "now"})
                sending = eager.start(transport.handle_async_request(request))
                try:
                    on_the_wire = conn.recv(65536)  # no waiting: what the client has written so far
                except BlockingIOError:
                    on_the_wire = b""
                await loop.sock_sendall(conn, answer)
                assert (await sending).status_code == 200
        assert on_the_wire.startswith(b"POST /orders/regular HTTP/1.1\r\n") and on_the_wire.endswith(b"tag=now")
    finally:
        listener.close()


async def test_an_answer_is_awaited_in_the_requests_own_task_and_its_timeout_ends_that_task_only(server):
    """The answer's read timeout is a timer on the connection, not a task of ``asyncio.wait_for`` (~20 µs of CPU
    an answer, issue #18): a request started eagerly (shared/eager.py) makes no task but its own, and when the
    broker stays silent its own task raises ReadTimeout while the caller, in whose turn it started, goes on."""
    transport = server.transport()
    try:
        async with httpx.AsyncClient(base_url=server.root, transport=transport, timeout=0.5) as c:
            warm = await asyncio.gather(c.get("/length"), c.get("/length"))  # two connections kept alive
            assert [r.content for r in warm] == [BODY, BODY] and transport.opened == 2
            before = len(asyncio.all_tasks())
            silent = eager.start(transport.handle_async_request(c.build_request("POST", "/silent", data={"tag": "s"})))
            answered = eager.start(transport.handle_async_request(c.build_request("GET", "/length")))
            assert len(asyncio.all_tasks()) == before + 2  # the two requests' tasks, nothing per answer
            assert (await answered).status_code == 200
            with pytest.raises(httpx.ReadTimeout):
                await silent
            assert not asyncio.current_task().cancelling()
            assert (await c.get("/close")).content == BODY  # a body read until the close is not a timeout
    finally:
        await transport.aclose()
